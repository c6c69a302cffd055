"""minidock build: images from a Dockerfile, the way `docker build` (BuildKit) makes them."""
