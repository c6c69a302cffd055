from minidock.cli.main import main

main()
