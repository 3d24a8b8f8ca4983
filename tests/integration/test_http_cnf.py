"""The cFos-compatible HTTP API on a real socket, driven by httpx as the docs drive curl."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime

import httpx
import pytest
import trustme

from adapters.http import HttpApi, HttpApiConfig, SmgwListenerConfig
from energytree.errors import ConfigError
from energytree.formula import MappingEnvironment
from energytree.variables import VariableStore

USER, PASSWORD = "admin", "1234abcd"
ENV = MappingEnvironment({"M1.current": 7000.0}, now=datetime(2026, 6, 3, 10, tzinfo=UTC))
FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
# The docs' own POST example, with its stray "]" after the first entry.
DOCS_MALFORMED = '{"vars": [{ "name": "var1", "expr": 1.5 }], { "name": "var2", "expr": 2 }] }'


@pytest.fixture
def path(tmp_path):
    return tmp_path / "variables.json"


@pytest.fixture
def store(path):
    store = VariableStore(path)
    store.load()
    return store


@pytest.fixture
async def api(store):
    config = HttpApiConfig(port=0, username=USER, password=PASSWORD)
    async with HttpApi(config, store, lambda: ENV) as api:
        yield api


@pytest.fixture
async def client(api):
    base = f"http://127.0.0.1:{api.port}"
    async with httpx.AsyncClient(base_url=base, auth=(USER, PASSWORD)) as client:
        yield client


async def get_vars(client: httpx.AsyncClient) -> list[dict]:
    response = await client.get("/cnf", params={"cmd": "get_cm_vars"})
    assert response.status_code == 200
    return response.json()["vars"]


async def set_var(client: httpx.AsyncClient, name: str, val: str, **flags: str) -> httpx.Response:
    params = {"cmd": "set_cm_vars", "name": name, "val": val, **flags}
    return await client.get("/cnf", params=params)


async def test_get_set_as_in_the_docs(client):
    response = await client.get("/cnf?cmd=set_cm_vars&name=var3&val=123")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"changed": ["var3"]}
    assert await get_vars(client) == [{"name": "var3", "expr": 123, "value": 123.0}]


async def test_post_with_form_content_type_is_read_as_json(client):
    body = '{ "vars": [{ "name": "tarif", "expr": 1 }, { "name": "PWR", "expr": 70 }] }'
    response = await client.post("/cnf?cmd=set_cm_vars", content=body, headers=FORM)
    assert response.status_code == 200
    assert await get_vars(client) == [
        {"name": "tarif", "expr": 1, "value": 1.0},
        {"name": "PWR", "expr": 70, "value": 70.0},
    ]


async def test_post_with_clear_deletes_the_others(client):
    await set_var(client, "var3", "123")
    body = {"vars": [{"name": "var1", "expr": 1.5}, {"name": "var2", "expr": 2}]}
    response = await client.post("/cnf?cmd=set_cm_vars&clear=1", json=body)
    assert response.status_code == 200
    assert [(v["name"], v["value"]) for v in await get_vars(client)] == [
        ("var1", 1.5),
        ("var2", 2.0),
    ]


async def test_get_set_with_clear(client):
    await set_var(client, "var3", "123")
    await set_var(client, "AVAIL", "80", clear="1")
    assert [v["name"] for v in await get_vars(client)] == ["AVAIL"]


async def test_tmp_is_not_persisted(client, path):
    await set_var(client, "AVAIL", "60")
    assert (await set_var(client, "AVAIL", "30", tmp="1")).status_code == 200
    assert (await get_vars(client))[0]["value"] == 30
    restarted = VariableStore(path)
    restarted.load()
    assert restarted.value("AVAIL", ENV) == 60


async def test_get_cm_vars_shows_formulas_and_their_values(client):
    await set_var(client, "AVAIL", "40")
    await set_var(client, "house", "55000 * CM.AVAIL / 100")
    await set_var(client, "rule", "M1.current >= 6500 ? M1.current : 0")
    await set_var(client, "broken", "M9.power_w * 2")
    shown = {v["name"]: v for v in await get_vars(client)}
    assert shown["house"] == {"name": "house", "expr": "55000 * CM.AVAIL / 100", "value": 22000.0}
    assert shown["rule"]["value"] == 7000.0
    assert shown["broken"]["value"] is None
    assert "unknown name 'M9.power_w'" in shown["broken"]["error"]


# --- rejections: each answers {"error": …} and changes nothing --------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "fragment"),
    [
        ("POST", "/cnf?cmd=set_cm_vars", DOCS_MALFORMED, 400, "line 1 column 45 (char 44)"),
        ("POST", "/cnf?cmd=set_cm_vars", '{"vars":[{"name":"a","expr":NaN}]}', 400, "NaN"),
        ("POST", "/cnf?cmd=set_cm_vars", '{"vars":[{"name":"a","expr":1e400}]}', 400, "finite"),
        ("POST", "/cnf?cmd=set_cm_vars", '{"vars":[{"name":"a","expr":1},{"name":"b"}]}', 400,
         "vars[1]"),
        ("POST", "/cnf?cmd=set_cm_vars", '[1, 2]', 400, "expected an object"),
        ("POST", "/cnf?cmd=set_cm_vars", "[" * 60000, 400, "JSON"),
        ("POST", "/cnf?cmd=set_cm_vars", '{"vars":[{"name":"a","expr":' + "9" * 5000 + "}]}",
         400, "invalid JSON"),
        ("POST", "/cnf?cmd=set_cm_vars", '{"vars":[{"name":"a","expr":' + "9" * 400 + "}]}",
         400, "too large"),
        ("POST", "/cnf?cmd=set_cm_vars", b"\xff", 400, "UTF-8"),
        ("POST", "/cnf?cmd=set_cm_vars", '{"vars": []}' + " " * 65536, 413, "65536"),
        ("GET", "/cnf?cmd=set_cm_vars&name=a&val=nan", None, 400, "not a finite number"),
        ("GET", "/cnf?cmd=set_cm_vars&name=a&val=1%20%2B", None, 400, "^"),
        ("GET", "/cnf?cmd=set_cm_vars&name=a&val=1&clear=yes", None, 400, "clear must be 0 or 1"),
        ("GET", "/cnf?cmd=set_cm_vars&name=a", None, 400, "name=… and val=…"),
        ("GET", "/cnf?cmd=set_cm_vars&name=1x&val=1&clear=1", None, 400, "invalid variable name"),
        ("GET", "/cnf?cmd=set_cm_vars&name=AVAIL&val=CM.x", None, 400, "cycle"),
        ("GET", "/cnf?cmd=reboot", None, 400, "known commands: set_cm_vars, get_cm_vars"),
        ("GET", "/cnf", None, 400, "unknown cmd None"),
        ("POST", "/cnf?cmd=get_cm_vars", "{}", 405, "Method Not Allowed"),
        ("PUT", "/cnf?cmd=set_cm_vars", "{}", 405, "Method Not Allowed"),
        ("GET", "/other", None, 404, "Not Found"),
    ],
)  # fmt: skip
async def test_rejections_change_nothing(client, path, method, url, body, status, fragment):
    await set_var(client, "AVAIL", "60")
    await set_var(client, "x", "CM.AVAIL / 2")
    before, file_before = await get_vars(client), path.read_bytes()
    response = await client.request(method, url, content=body, headers=FORM)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    assert fragment in response.json()["error"]
    assert await get_vars(client) == before
    assert path.read_bytes() == file_before


async def test_a_bad_formula_answers_with_the_caret_message(client):
    response = await set_var(client, "x", "min(1, 2) + clamp(3)")
    assert response.status_code == 400
    message = response.json()["error"]
    assert "clamp() takes 3 argument(s), got 1 at position 12" in message
    assert message.splitlines()[-1] == " " * (2 + 12) + "^"


async def test_a_plus_sign_in_a_get_query_is_a_space_and_the_error_says_so(client):
    response = await client.get("/cnf?cmd=set_cm_vars&name=x&val=M1.current+1000")
    assert response.status_code == 400
    assert "%2B" in response.json()["error"]
    response = await client.get("/cnf?cmd=set_cm_vars&name=x&val=M1.current%2B1000")
    assert response.status_code == 200
    assert (await get_vars(client))[0] == {"name": "x", "expr": "M1.current+1000", "value": 8000}


async def test_405_names_the_allowed_methods(client):
    response = await client.put("/cnf?cmd=set_cm_vars")
    assert set(response.headers["Allow"].split(",")) == {"GET", "POST"}


async def test_internal_errors_leak_nothing(store, caplog):
    def broken_environment():
        raise RuntimeError("secret detail")

    config = HttpApiConfig(port=0, username=USER, password=PASSWORD)
    async with (
        HttpApi(config, store, broken_environment) as api,
        httpx.AsyncClient(auth=(USER, PASSWORD)) as client,
    ):
        response = await client.get(f"http://127.0.0.1:{api.port}/cnf?cmd=get_cm_vars")
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error"}
    assert "secret detail" in caplog.text  # logged, not sent


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [None, (USER, "wrong"), ("root", PASSWORD), (USER, PASSWORD + "x"), (USER, "")],
    ids=["none", "wrong-password", "wrong-user", "longer-password", "empty-password"],
)
async def test_missing_or_wrong_credentials_get_401(api, path, auth):
    url = f"http://127.0.0.1:{api.port}/cnf?cmd=set_cm_vars&name=a&val=1"
    async with httpx.AsyncClient() as anonymous:
        response = await anonymous.get(url, auth=auth)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="energytree"'
    assert "error" in response.json()
    assert not path.exists()


@pytest.mark.parametrize("header", ["Bearer abc", "Basic !!!", "Basic", "basic YWRtaW4="])
async def test_malformed_authorization_headers_get_401(api, header):
    async with httpx.AsyncClient() as anonymous:
        response = await anonymous.get(
            f"http://127.0.0.1:{api.port}/cnf?cmd=get_cm_vars", headers={"Authorization": header}
        )
    assert response.status_code == 401


# --- TLS and the Smart Meter Gateway listener -------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A server CA with a cert for 127.0.0.1, and a separate CA that issues gateway certs."""
    folder = tmp_path_factory.mktemp("pki")
    server_ca, gateway_ca, stranger_ca = trustme.CA(), trustme.CA(), trustme.CA()
    server = server_ca.issue_cert("127.0.0.1")
    server.private_key_pem.write_to_path(folder / "server.key")
    for blob in server.cert_chain_pems:
        blob.write_to_path(folder / "server.pem", append=True)
    gateway_ca.cert_pem.write_to_path(folder / "gateway-ca.pem")
    return {
        "folder": folder,
        "server_ca": server_ca,
        "gateway": gateway_ca.issue_cert("smgw.example"),
        "stranger": stranger_ca.issue_cert("smgw.example"),
    }


def client_context(pki, cert_name: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    pki["server_ca"].configure_trust(context)
    if cert_name is not None:
        pki[cert_name].configure_cert(context)
    return context


@pytest.fixture
async def tls_api(store, pki):
    folder = pki["folder"]
    config = HttpApiConfig(
        port=0,
        username=USER,
        password=PASSWORD,
        tls_cert=folder / "server.pem",
        tls_key=folder / "server.key",
        smgw=SmgwListenerConfig(
            port=0,
            tls_cert=folder / "server.pem",
            tls_key=folder / "server.key",
            client_ca=folder / "gateway-ca.pem",
        ),
    )
    async with HttpApi(config, store, lambda: ENV) as api:
        yield api


async def test_tls_listener_with_password(tls_api, pki):
    url = f"https://127.0.0.1:{tls_api.port}/cnf?cmd=set_cm_vars&name=AVAIL&val=50"
    async with httpx.AsyncClient(verify=client_context(pki)) as client:
        assert (await client.get(url)).status_code == 401
        assert (await client.get(url, auth=(USER, PASSWORD))).status_code == 200


async def test_smgw_listener_accepts_the_gateway_certificate_without_password(tls_api, pki, store):
    url = f"https://127.0.0.1:{tls_api.smgw_port}/cnf?cmd=set_cm_vars&name=AVAIL&val=50"
    async with httpx.AsyncClient(verify=client_context(pki, "gateway")) as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert store.value("AVAIL", ENV) == 50


@pytest.mark.parametrize("cert_name", [None, "stranger"], ids=["no-cert", "foreign-ca"])
async def test_smgw_listener_refuses_clients_without_a_gateway_certificate(
    tls_api, pki, store, cert_name
):
    url = f"https://127.0.0.1:{tls_api.smgw_port}/cnf?cmd=set_cm_vars&name=AVAIL&val=50"
    async with httpx.AsyncClient(verify=client_context(pki, cert_name)) as client:
        with pytest.raises(httpx.TransportError):
            await client.get(url)
    assert store.names() == []


async def test_bad_certificate_paths_are_config_errors(store, tmp_path):
    config = HttpApiConfig(
        port=0, password=PASSWORD, tls_cert=tmp_path / "none.pem", tls_key=tmp_path / "none.key"
    )
    with pytest.raises(ConfigError, match=r"none\.pem"):
        await HttpApi(config, store, lambda: ENV).start()


def test_config_requires_cert_and_key_together(tmp_path):
    with pytest.raises(ValueError, match="together"):
        HttpApiConfig(password=PASSWORD, tls_cert=tmp_path / "a.pem")
