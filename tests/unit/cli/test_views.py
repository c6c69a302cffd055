"""Docker's list semantics without root: image reference globs, ps filters, ps rows, inspect
HostConfig defaults, go-units durations and sizes."""

from __future__ import annotations

import pytest

from minidock.cli import gotemplate, views
from minidock.cli.images import reference_matches
from minidock.errors import InvalidArgument


@pytest.mark.parametrize("pattern,tag,want", [
    ("myrepo", "myrepo:1", True),
    ("myrepo", "docker.io/library/myrepo:latest", True),
    ("myrepo", "other/myrepo:1", False),          # * and names never cross a /
    ("myrepo", "myrepo2:1", False),
    ("myrepo:1", "myrepo:1", True),
    ("myrepo:1", "myrepo:10", False),
    ("myrepo:*", "myrepo:10", True),
    ("*/myrepo", "other/myrepo:1", True),
    ("*", "other/myrepo:1", False),
    ("*", "busybox:latest", True),
    ("busy*:lat?st", "busybox:latest", True),
    ("busybox:[a-l]*", "busybox:latest", True),
    ("localhost:5000/app", "localhost:5000/app:v1", True),
    ("localhost:5000/*", "localhost:5000/app:v1", True),
])
def test_reference_filter_is_dockers_glob(pattern, tag, want):
    assert reference_matches(pattern, tag) is want


def _rec(name="web", labels=None, status="running", created="2024-01-01T00:00:00Z", **extra):
    rec = {"Id": "ab" * 32, "Name": "/" + name, "Created": created, "Path": "sleep", "Args": ["300"],
           "Image": "sha256:" + "cd" * 32, "ImageRef": "busybox",
           "Config": {"Labels": labels or {}, "ExposedPorts": {"80/tcp": {}}},
           "HostConfig": {"NetworkMode": "bridge"},
           "State": {"Status": status, "Running": status == "running", "ExitCode": 0,
                     "StartedAt": created, "FinishedAt": "0001-01-01T00:00:00Z"},
           "NetworkSettings": {"Networks": {"bridge": {}},
                               "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}},
           "Mounts": [{"Type": "volume", "Name": "data", "Driver": "local", "Destination": "/data"}]}
    rec.update(extra)
    return rec


def test_ps_name_filter_is_a_regex_on_slash_name():
    f = views.parse_filters(["name=^/web$"], views.PS_FILTERS)
    assert views.matches(_rec("web"), f) and not views.matches(_rec("web2"), f)
    assert views.matches(_rec("myweb"), views.parse_filters(["name=web"], views.PS_FILTERS))
    # values of one key are OR'ed, keys AND'ed
    f = views.parse_filters(["name=^/a$", "name=^/web$", "status=running"], views.PS_FILTERS)
    assert views.matches(_rec("web"), f) and not views.matches(_rec("web", status="exited"), f)


def test_ps_filters_refuse_unknown_keys_and_statuses():
    with pytest.raises(InvalidArgument, match="invalid filter 'nope'"):
        views.parse_filters(["nope=1"], views.PS_FILTERS)
    with pytest.raises(InvalidArgument):
        views.matches(_rec(), views.parse_filters(["status=sleeping"], views.PS_FILTERS))


def test_ps_label_publish_expose_volume_filters():
    rec = _rec(labels={"a": "b", "c": "d"})
    m = lambda *f: views.matches(rec, views.parse_filters(list(f), views.PS_FILTERS))  # noqa: E731
    assert m("label=a") and m("label=a=b") and m("label=a", "label=c=d")
    assert not m("label=a=x") and not m("label=a", "label=zz")
    assert m("publish=8080") and m("publish=8080/tcp") and not m("publish=80")
    assert m("expose=80") and not m("expose=81")
    assert m("volume=data") and m("network=bridge") and not m("network=other")


def test_ps_row_fields_and_label_method():
    row = views.ps_row(_rec(labels={"a": "b", "c": "d"}))
    t = lambda s: gotemplate.parse(s).execute(row)  # noqa: E731
    assert t('{{.Names}} {{.Label "a"}} {{.Labels}} {{.Networks}} {{.LocalVolumes}} {{.Mounts}}') == \
        "web b a=b,c=d bridge 1 data"
    assert t("{{.Command}} {{.Ports}} {{.State}}") == '"sleep 300" 0.0.0.0:8080->80/tcp running'
    assert t("{{.ID}}") == "ab" * 6
    j = views.ps_json(row)
    assert sorted(j) == ["Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names",
                         "Networks", "Platform", "Ports", "RunningFor", "Size", "State", "Status"]
    with pytest.raises(gotemplate.TemplateError, match="can't evaluate field Nope"):
        t("{{.Nope}}")


def test_inspect_view_has_every_hostconfig_key_with_docker_defaults():
    rec = _rec()
    rec["HostConfig"] = {"NetworkMode": "bridge", "CapAdd": [], "Binds": ["/a:/b"], "Resources": {}}
    hc = views.inspect_view(rec)["HostConfig"]
    for k, _ in views.HOST_CONFIG_DEFAULTS:
        assert k in hc
    assert len(views.HOST_CONFIG_DEFAULTS) >= 63
    assert hc["Memory"] == 0 and hc["ShmSize"] == 64 << 20 and hc["CapAdd"] is None and hc["Binds"] == ["/a:/b"]
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert gotemplate.render("{{.HostConfig.Memory}} {{.HostConfig.CapAdd}} {{json .HostConfig.CapAdd}} "
                             "{{.HostConfig.PidsLimit}}", {"HostConfig": hc}) == "0 [] null <nil>"


def test_go_units():
    assert views.human_duration(0.5) == "Less than a second"
    assert views.human_duration(1) == "1 second"
    assert views.human_duration(59) == "59 seconds"
    assert views.human_duration(60) == "About a minute"
    assert views.human_duration(3599) == "59 minutes"
    assert views.human_duration(3600) == "About an hour"
    assert views.human_duration(47 * 3600) == "47 hours"
    assert views.human_duration(3 * 86400) == "3 days"
    assert views.human_duration(20 * 86400) == "2 weeks"
    assert views.human_duration(90 * 86400) == "3 months"
    assert views.human_duration(800 * 86400) == "2 years"
    assert views.human_size(0) == "0B"
    assert views.human_size(2140160) == "2.14MB"
    assert views.human_size(1000) == "1kB"
    assert views.human_size(999) == "999B"
