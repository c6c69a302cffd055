"""Volume copy-up with links planted in the volume (issue 17): a container sharing the volume puts
`etc -> /host/dir` (or a file link) there while a new container's image content is copied in.
The old path-based copy followed the link (an image file was written into a host directory,
which was chmod'ed to the image's mode); the descriptor-based copy skips the taken names."""

from __future__ import annotations

import os
import stat

from minidock.volumes.copy import copy_tree_contents, copy_up_tree


def _image_tree(root):
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0\n")
    os.chmod(root / "etc", 0o777)
    (root / "motd").write_text("hello\n")
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "deep" / "f").write_text("x")
    os.symlink("/etc/passwd", root / "link")
    os.mkfifo(root / "fifo", 0o640)


def _planted(tmp_path):
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir(mode=0o700)
    host_file = tmp_path / "hostfile"
    host_file.write_text("host\n")
    os.chmod(host_file, 0o600)
    vol = tmp_path / "vol"
    vol.mkdir()
    os.symlink(host_dir, vol / "etc")      # the container's plant: a directory link...
    os.symlink(host_file, vol / "motd")    # ...and a file link
    return host_dir, host_file, vol


def test_planted_links_are_not_followed(tmp_path):
    img = tmp_path / "img"
    img.mkdir()
    _image_tree(img)
    host_dir, host_file, vol = _planted(tmp_path)
    copy_up_tree(str(img), str(vol))
    assert os.listdir(host_dir) == []
    assert stat.S_IMODE(os.stat(host_dir).st_mode) == 0o700
    assert host_file.read_text() == "host\n" and stat.S_IMODE(os.stat(host_file).st_mode) == 0o600
    # the rest came over, faithfully
    assert (vol / "sub" / "deep" / "f").read_text() == "x"
    assert os.readlink(vol / "link") == "/etc/passwd"
    assert stat.S_ISFIFO(os.lstat(vol / "fifo").st_mode) and stat.S_IMODE(os.lstat(vol / "fifo").st_mode) == 0o640


def test_the_path_based_copy_was_fooled(tmp_path):
    """Control: the old copy (still used by `cp`, which resolves its own way) writes through."""
    img = tmp_path / "img"
    img.mkdir()
    _image_tree(img)
    host_dir, _, vol = _planted(tmp_path)
    try:
        copy_tree_contents(str(img), str(vol))
    except OSError:
        pass
    assert os.listdir(host_dir) == ["passwd"]


def test_a_clean_copy_keeps_modes_and_times(tmp_path):
    img = tmp_path / "img"
    img.mkdir()
    _image_tree(img)
    os.utime(img / "motd", ns=(1_000_000_000, 2_000_000_000))
    vol = tmp_path / "vol"
    vol.mkdir()
    copy_up_tree(str(img), str(vol))
    assert stat.S_IMODE(os.stat(vol / "etc").st_mode) == 0o777
    assert (vol / "etc" / "passwd").read_text() == "root:x:0:0\n"
    assert os.stat(vol / "motd").st_mtime_ns == 2_000_000_000
