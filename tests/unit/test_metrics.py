"""metrics: the text exposition, read back with the official client's parser."""
from prometheus_client.openmetrics.parser import text_string_to_metric_families as strict
from prometheus_client.parser import text_string_to_metric_families

from ignity import metrics

RES = {"rss_bytes": 2048, "cpu_user_seconds": 1.5, "cpu_system_seconds": 0.25, "open_fds": 7, "threads": 2,
       "processes": 1}


def samples(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_services_and_ignity_parse():
    services = [
        {"name": "web", "pid": 10, "ready": True, "health": "ok", "restarts": 2, "resources": RES},
        {"name": 'we"ird\\na\nme', "pid": None, "ready": False, "health": "failed", "restarts": 0,
         "resources": None},
    ]
    got = samples(metrics.exposition(services, RES))
    web = (("service", "web"),)
    assert got[("ignity_service_up", web)] == 1
    assert got[("ignity_service_ready", web)] == 1
    assert got[("ignity_service_healthy", web)] == 1
    assert got[("ignity_service_restarts_total", web)] == 2
    assert got[("ignity_service_rss_bytes", web)] == 2048
    assert got[("ignity_service_open_fds", web)] == 7
    assert got[("ignity_service_cpu_seconds_total", (("mode", "user"), ("service", "web")))] == 1.5
    assert got[("ignity_service_cpu_seconds_total", (("mode", "system"), ("service", "web")))] == 0.25
    weird = (("service", 'we"ird\\na\nme'),)
    assert got[("ignity_service_up", weird)] == 0
    assert got[("ignity_service_healthy", weird)] == 0
    assert ("ignity_service_rss_bytes", weird) not in got
    # ignity's own: the same families, no service label
    assert got[("ignity_service_rss_bytes", ())] == 2048
    assert got[("ignity_service_cpu_seconds_total", (("mode", "user"),))] == 1.5


def test_types():
    text = metrics.exposition([{"name": "a", "pid": 1, "ready": True, "health": "ok", "restarts": 0,
                                "resources": RES}], None)
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["ignity_service_up"] == "gauge"
    assert types["ignity_service_restarts"] == "counter"
    assert types["ignity_service_cpu_seconds"] == "counter"
    assert text.endswith("\n")


def test_no_services():
    assert samples(metrics.exposition([], None)) == {}


def test_openmetrics_parses_with_the_strict_parser():

    services = [{"name": "web", "pid": 10, "ready": True, "health": "ok", "restarts": 2, "resources": RES},
                {"name": "off", "pid": None, "ready": False, "health": "ok", "restarts": 0, "resources": None}]
    text = metrics.exposition(services, RES, openmetrics=True)
    assert text.endswith("# EOF\n")
    got = {}
    for family in strict(text):
        for s in family.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert got[("ignity_service_restarts_total", (("service", "web"),))] == 2
    assert got[("ignity_service_cpu_seconds_total", (("mode", "user"),))] == 1.5
    assert got[("ignity_service_up", (("service", "off"),))] == 0
