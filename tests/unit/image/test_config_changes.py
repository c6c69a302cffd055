"""`import --change`: Dockerfile instructions applied to an image config."""

import pytest

from minidock.errors import InvalidArgument
from minidock.image.config import apply_changes


def test_json_and_shell_forms():
    cfg = apply_changes({}, ['CMD ["sh", "-c", "echo hi"]', "ENTRYPOINT /bin/app --flag"])
    assert cfg["Cmd"] == ["sh", "-c", "echo hi"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/bin/app --flag"]


def test_env_label_expose_volume_user_workdir():
    cfg = apply_changes({"Env": ["A=0", "PATH=/bin"]}, [
        'ENV A=1 B="two words"', "LABEL k=v", "EXPOSE 80 53/udp", "VOLUME /data /logs",
        "USER nobody", "WORKDIR /srv", "STOPSIGNAL SIGINT"])
    assert cfg["Env"] == ["A=1", "PATH=/bin", "B=two words"]
    assert cfg["Labels"] == {"k": "v"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data": {}, "/logs": {}}
    assert (cfg["User"], cfg["WorkingDir"], cfg["StopSignal"]) == ("nobody", "/srv", "SIGINT")


def test_unknown_instruction_is_refused():
    with pytest.raises(InvalidArgument, match="RUN is not a valid change command"):
        apply_changes({}, ["RUN echo"])
