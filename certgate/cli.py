"""The `certgate` command: `serve`, and thin clients of the management API."""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from certgate.client import ManagementClient, ManagementError
from certgate.limits import add_limit_flags

Handler = Callable[[ManagementClient, argparse.Namespace], Any]


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        from certgate.serve import serve

        serve(args)
        return
    try:
        with ManagementClient.from_args(args) as client:
            result = args.handler(client, args)
            if client.last_revision is not None and not args.no_wait:
                client.wait_for_revision(client.last_revision, args.wait_timeout)
        if result is not None:
            _print(result, args)
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`certgate cert list | head`): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except (ManagementError, CliError, httpx.HTTPError, OSError) as error:
        print(f"certgate: {_printable(_one_line(error))}", file=sys.stderr)
        sys.exit(1)


class CliError(Exception):
    """A mistake in the command line itself, reported in one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(commands)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--management-url", help="management API URL (env CERTGATE_URL)")
    common.add_argument("--token", help="admin token (env CERTGATE_ADMIN_TOKEN)")
    common.add_argument("--data-dir", type=Path, default=Path("certgate-data"))
    common.add_argument("--cacert", type=Path, help="CA bundle that signed the management API")
    common.add_argument("--output", choices=("table", "json"), default="table")
    common.add_argument(
        "--wait-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="after a change, wait at most this long until every gateway worker serves it "
        "(default 10)",
    )
    common.add_argument(
        "--no-wait", action="store_true", help="return as soon as a change is stored"
    )
    _add_cert(commands, common)
    _add_ca(commands, common)
    _add_hostname(commands, common)
    _add_api(commands, common)
    _add_operation(commands, common)
    _add_backend(commands, common)
    _add_policy(commands, common)
    _add_named_value(commands, common)
    _add_product(commands, common)
    _add_fragment(commands, common)
    _add_crl(commands, common)
    _add_gateway(commands, common)
    _add_status(commands, common)
    _add_apiops(commands, common)
    return parser


def _add_serve(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the management API and the gateway")
    serve.add_argument("--data-dir", type=Path, default=Path("certgate-data"))
    serve.add_argument(
        "--store",
        metavar="URL",
        help="the configuration store: postgresql://USER:PASSWORD@HOST:PORT/DB, shared by "
        "several nodes (they also need the same CERTGATE_DATA_KEY and CERTGATE_ADMIN_TOKEN), "
        "or sqlite:///FILE (default: certgate.sqlite in --data-dir)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--management-port", type=int, default=9443)
    serve.add_argument("--gateway-port", type=int, default=8443)
    serve.add_argument("--http-port", type=int, help="also serve the gateway over plain HTTP")
    serve.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    serve.add_argument("--key-vault-refresh-interval", type=float, default=60.0)
    serve.add_argument("--vault-token-file", type=Path, help="OpenBao/Vault token file")
    serve.add_argument("--vault-role-id-file", type=Path, help="AppRole role-id file")
    serve.add_argument("--vault-secret-id-file", type=Path, help="AppRole secret-id file")
    serve.add_argument("--log-level", default="INFO")
    serve.add_argument(
        "--node",
        default=socket.gethostname(),
        help="this gateway's name in the worker status (default: the host name)",
    )
    serve.add_argument(
        "--heartbeat-interval",
        type=float,
        default=2.0,
        help="seconds between worker status heartbeats; a worker silent for 5 intervals "
        "is not live (default 2)",
    )
    serve.add_argument(
        "--revision-poll-interval",
        type=float,
        default=0.25,
        help="seconds between a worker's checks of the store revision (default 0.25)",
    )
    serve.add_argument(
        "--revision-full-poll-interval",
        type=float,
        default=5.0,
        help="PostgreSQL store: workers wait for write notifications (LISTEN/NOTIFY) and read "
        "the revision anyway every this many seconds, in case one was lost (default 5)",
    )
    serve.add_argument(
        "--lease-timeout",
        type=float,
        default=30.0,
        help="seconds after which another node takes over the key vault refreshes of a node "
        "that stopped renewing its lease (renewed every third of it; default 30)",
    )
    serve.add_argument(
        "--worker-start-timeout",
        type=float,
        default=30.0,
        help="seconds every gateway worker has to compile its configuration and listen "
        "(default 30)",
    )
    serve.add_argument(
        "--access-log",
        default="off",
        metavar="PATH|-|off",
        help="one JSON line per gateway request: a file every worker appends to, - for "
        "standard output, or off (default off); see docs/observability.md",
    )
    serve.add_argument(
        "--expiry-check-interval",
        type=float,
        default=3600.0,
        help="seconds between checks for certificates in use that expire within 30, 14 or "
        "7 days (each warning is logged once a day; default 3600)",
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="seconds workers have to finish after SIGTERM before they are killed (default 10)",
    )
    serve.add_argument(
        "--api-import-allow-url",
        action="append",
        default=[],
        metavar="URL",
        help="URL prefix '-link' API imports may fetch from (repeatable; default: none)",
    )
    add_limit_flags(serve)


def _command(group, name: str, handler: Handler, common, help: str) -> argparse.ArgumentParser:
    parser = group.add_parser(name, parents=[common], help=help)
    parser.set_defaults(handler=handler)
    return parser


def _add_cert(commands, common) -> None:
    group = commands.add_parser("cert", help="certificates").add_subparsers(required=True)
    add = _command(group, "add", _cert_add, common, "upload a PFX or reference a key vault secret")
    add.add_argument("id")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--pfx", type=Path, help="PFX (PKCS#12), or a DER/PEM certificate")
    source.add_argument("--key-vault", metavar="SECRET_ID", help="key vault secret identifier")
    add.add_argument("--identity", help="key vault identity id (identityClientId)")
    password = add.add_mutually_exclusive_group()
    password.add_argument("--password-file", type=Path)
    password.add_argument("--password-stdin", action="store_true")
    _command(group, "list", _lister("certificates"), common, "list certificates")
    _command(group, "show", _shower("certificates"), common, "show one certificate").add_argument(
        "id"
    )
    _command(
        group, "delete", _deleter("certificates"), common, "delete a certificate"
    ).add_argument("id")
    refresh = _command(group, "refresh", _cert_refresh, common, "re-read a key vault certificate")
    refresh.add_argument("id")


def _add_ca(commands, common) -> None:
    group = commands.add_parser("ca", help="CA certificates that verify clients").add_subparsers(
        required=True
    )
    add = _command(group, "add", _ca_add, common, "add a CA certificate")
    add.add_argument("file", type=Path)
    add.add_argument("--store", choices=("root", "intermediate"), default="root")
    _command(group, "list", _ca_list, common, "list CA certificates")
    _command(group, "delete", _ca_delete, common, "remove a CA certificate").add_argument(
        "thumbprint"
    )


def _add_hostname(commands, common) -> None:
    group = commands.add_parser("hostname", help="gateway hostnames").add_subparsers(required=True)
    setter = _command(group, "set", _hostname_set, common, "configure a gateway hostname")
    setter.add_argument("name")
    setter.add_argument(
        "--negotiate-client-certificate", action=argparse.BooleanOptionalAction, default=False
    )
    setter.add_argument("--certificate", help="server certificate id (default: the dev one)")
    setter.add_argument("--default", action="store_true", help="use for unknown or absent SNI")
    _command(group, "list", _hostname_list, common, "list gateway hostnames")
    _command(group, "delete", _hostname_delete, common, "remove a gateway hostname").add_argument(
        "name"
    )


def _add_api(commands, common) -> None:
    group = commands.add_parser("api", help="APIs").add_subparsers(required=True)
    create = _command(group, "create", _api_create, common, "create or replace an API")
    create.add_argument("id")
    create.add_argument("--path", required=True)
    create.add_argument("--service-url", required=True)
    create.add_argument("--display-name")
    create.add_argument("--protocols", default="https", help="comma-separated: https,http")
    _command(group, "list", _lister("apis"), common, "list APIs")
    _command(group, "show", _shower("apis"), common, "show an API").add_argument("id")
    _command(group, "delete", _deleter("apis"), common, "delete an API").add_argument("id")
    creds = _command(group, "set-credentials", _api_credentials, common, "gateway credentials")
    creds.add_argument("id")
    which = creds.add_mutually_exclusive_group(required=True)
    which.add_argument("--certificate", help="present this certificate to the backend")
    which.add_argument("--none", action="store_true", help="present no certificate")


def _add_operation(commands, common) -> None:
    group = commands.add_parser("operation", help="API operations").add_subparsers(required=True)
    add = _command(group, "add", _operation_add, common, "add an operation to an API")
    add.add_argument("api")
    add.add_argument("id")
    add.add_argument("--method", default="*")
    add.add_argument("--url-template", required=True)
    add.add_argument("--display-name")
    listing = _command(group, "list", _operation_list, common, "list an API's operations")
    listing.add_argument("api")
    delete = _command(group, "delete", _operation_delete, common, "delete an operation")
    delete.add_argument("api")
    delete.add_argument("id")


def _add_backend(commands, common) -> None:
    group = commands.add_parser("backend", help="backends").add_subparsers(required=True)
    create = _command(group, "create", _backend_create, common, "create or replace a backend")
    create.add_argument("id")
    create.add_argument("--url", required=True)
    create.add_argument("--certificate", action="append", default=[], help="client certificate id")
    create.add_argument("--skip-certificate-chain-validation", action="store_true")
    create.add_argument("--skip-certificate-name-validation", action="store_true")
    create.add_argument("--title")
    _command(group, "list", _lister("backends"), common, "list backends")
    _command(group, "show", _shower("backends"), common, "show a backend").add_argument("id")
    _command(group, "delete", _deleter("backends"), common, "delete a backend").add_argument("id")


def _add_policy(commands, common) -> None:
    group = commands.add_parser("policy", help="policy documents").add_subparsers(required=True)
    for name, handler, help in (
        ("set", _policy_set, "store a policy document (XML file)"),
        ("show", _policy_show, "print a policy document"),
        ("delete", _policy_delete, "delete a policy document"),
    ):
        parser = _command(group, name, handler, common, help)
        parser.add_argument("--api", help="API scope (default: global)")
        parser.add_argument("--operation", help="operation scope (needs --api)")
        parser.add_argument("--product", help="product scope")
        if name == "set":
            parser.add_argument("file", type=Path)


def _add_named_value(commands, common) -> None:
    group = commands.add_parser("named-value", help="named values ({{name}} in policies)")
    group = group.add_subparsers(required=True)
    setter = _command(group, "set", _named_value_set, common, "create or replace a named value")
    setter.add_argument("id")
    setter.add_argument("--display-name", help="the {{name}} policies use (default: the id)")
    value = setter.add_mutually_exclusive_group(required=True)
    value.add_argument("--value")
    value.add_argument("--value-file", type=Path)
    value.add_argument("--value-stdin", action="store_true")
    setter.add_argument("--secret", action="store_true", help="never returned by the API")
    _add_list_show_delete(group, common, "namedValues", "named value")


def _add_product(commands, common) -> None:
    group = commands.add_parser("product", help="products").add_subparsers(required=True)
    create = _command(group, "create", _product_create, common, "create or replace a product")
    create.add_argument("id")
    create.add_argument("--display-name")
    create.add_argument("--description")
    create.add_argument("--published", action="store_true", help="state published")
    _add_list_show_delete(group, common, "products", "product")
    for name, handler, help in (
        ("add-api", _product_add_api, "link an API to a product"),
        ("remove-api", _product_remove_api, "unlink an API from a product"),
    ):
        link = _command(group, name, handler, common, help)
        link.add_argument("product")
        link.add_argument("api")
    _command(group, "apis", _product_apis, common, "list a product's APIs").add_argument("product")


def _add_fragment(commands, common) -> None:
    group = commands.add_parser("fragment", help="policy fragments").add_subparsers(required=True)
    setter = _command(group, "set", _fragment_set, common, "store a policy fragment (XML file)")
    setter.add_argument("id")
    setter.add_argument("file", type=Path)
    setter.add_argument("--description")
    _add_list_show_delete(group, common, "policyFragments", "policy fragment")


def _add_crl(commands, common) -> None:
    group = commands.add_parser("crl", help="certificate revocation lists")
    group = group.add_subparsers(required=True)
    add = _command(group, "add", _crl_add, common, "upload a CRL (DER or PEM file)")
    add.add_argument("id")
    add.add_argument("file", type=Path)
    _add_list_show_delete(group, common, "certificateRevocationLists", "CRL")


def _add_apiops(commands, common) -> None:
    into = commands.add_parser("import", help="import a configuration").add_subparsers(
        required=True
    )
    load = _command(into, "apiops", _apiops_import, common, "apply an APIOps artifacts folder")
    load.add_argument("dir", type=Path)
    load.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    load.add_argument(
        "--delete-missing", action="store_true", help="delete what the folder does not have"
    )
    load.add_argument(
        "--configuration", type=Path, help="APIOps publisher overrides (YAML): secret values..."
    )
    out = commands.add_parser("export", help="export the configuration").add_subparsers(
        required=True
    )
    save = _command(out, "apiops", _apiops_export, common, "write an APIOps artifacts folder")
    save.add_argument("dir", type=Path)


def _add_gateway(commands, common) -> None:
    group = commands.add_parser("gateway", help="gateways: one per node (serve --node)")
    group = group.add_subparsers(required=True)
    create = _command(group, "create", _gateway_create, common, "create or replace a gateway")
    create.add_argument("id", help="the --node name its node runs with")
    create.add_argument("--location", help="locationData.name (default: the id)")
    create.add_argument("--city")
    create.add_argument("--district")
    create.add_argument("--country", help="locationData.countryOrRegion")
    create.add_argument("--description")
    _add_list_show_delete(group, common, "gateways", "gateway")
    trust = _command(group, "add-ca", _gateway_add_ca, common, "trust a stored CA on one node")
    trust.add_argument("gateway")
    trust.add_argument("certificate", help="the id of a stored certificate (cert add)")
    trust.add_argument(
        "--intermediate", action="store_true", help="for chain building only, not a trust anchor"
    )
    _command(group, "cas", _gateway_cas, common, "list a gateway's CAs").add_argument("gateway")
    remove = _command(group, "remove-ca", _gateway_remove_ca, common, "stop trusting a CA")
    remove.add_argument("gateway")
    remove.add_argument("certificate")


def _add_list_show_delete(group, common, collection: str, what: str) -> None:
    _command(group, "list", _lister(collection), common, f"list {what}s")
    _command(group, "show", _shower(collection), common, f"show a {what}").add_argument("id")
    _command(group, "delete", _deleter(collection), common, f"delete a {what}").add_argument("id")


def _add_status(commands, common) -> None:
    status = commands.add_parser(
        "status", parents=[common], help="the revision every gateway worker serves"
    )
    status.add_argument(
        "--wait",
        action="store_true",
        help="wait (--wait-timeout) until every live worker serves the store's revision",
    )
    status.set_defaults(handler=_status)


# --- list, show and delete are the same for every collection ---------------------------------


def _lister(collection: str) -> Handler:
    return lambda client, args: client.list(collection)


def _shower(collection: str) -> Handler:
    return lambda client, args: client.get(f"{collection}/{args.id}")


def _deleter(collection: str) -> Handler:
    return lambda client, args: client.delete(f"{collection}/{args.id}")


# --- certificates -----------------------------------------------------------------------------


def _cert_add(client: ManagementClient, args: argparse.Namespace) -> dict:
    if args.key_vault:
        key_vault = {"secretIdentifier": args.key_vault}
        if args.identity:
            key_vault["identityClientId"] = args.identity
        properties: dict[str, Any] = {"keyVault": key_vault}
    else:
        properties = {"data": base64.b64encode(args.pfx.read_bytes()).decode()}
        password = _read_password(args)
        if password is not None:
            properties["password"] = password
    return client.put(f"certificates/{args.id}", {"properties": properties})


def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if args.password_file:
        return args.password_file.read_text().rstrip("\r\n")
    return None


def _cert_refresh(client: ManagementClient, args: argparse.Namespace) -> dict:
    return client.post(f"certificates/{args.id}/refreshSecret")


# --- CA certificates and hostnames (properties of the service) --------------------------------


def _ca_add(client: ManagementClient, args: argparse.Namespace) -> list[dict]:
    store = "Root" if args.store == "root" else "CertificateAuthority"
    encoded = base64.b64encode(_certificate_der(args.file)).decode()
    cas = _service(client).get("certificates") or []
    cas = [_ca_entry(ca) for ca in cas]
    cas.append({"encodedCertificate": encoded, "storeName": store})
    service = client.patch("", {"properties": {"certificates": cas}})["properties"]
    return [_flatten_ca(ca) for ca in service["certificates"]]


def _certificate_der(path: Path) -> bytes:
    """The ARM contract carries base64 DER; accept a PEM file too, as openssl writes them."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)
    except ValueError:
        raise CliError(f"{path} is not a certificate (PEM or DER)") from None


def _ca_entry(ca: dict) -> dict:
    """An existing CA as the service keeps it: by thumbprint (the API never returns the DER)."""
    return {"storeName": ca["storeName"], "certificate": {"thumbprint": _thumbprint(ca)}}


def _thumbprint(ca: dict) -> str:
    return (ca.get("certificate") or {}).get("thumbprint", "")


def _ca_list(client: ManagementClient, args: argparse.Namespace) -> list[dict]:
    return [_flatten_ca(ca) for ca in _service(client).get("certificates") or []]


def _flatten_ca(ca: dict) -> dict:
    info = ca.get("certificate") or {}
    return {"storeName": ca["storeName"], **info}


def _ca_delete(client: ManagementClient, args: argparse.Namespace) -> None:
    cas = _service(client).get("certificates") or []
    wanted = args.thumbprint.upper()
    kept = [ca for ca in cas if _thumbprint(ca) != wanted]
    if len(kept) == len(cas):
        raise CliError(f"no CA certificate with thumbprint {wanted}")
    client.patch("", {"properties": {"certificates": [_ca_entry(ca) for ca in kept]}})


def _hostname_set(client: ManagementClient, args: argparse.Namespace) -> list[dict]:
    configs = [c for c in _service(client).get("hostnameConfigurations") or []]
    entry: dict[str, Any] = {
        "type": "Proxy",
        "hostName": args.name,
        "negotiateClientCertificate": args.negotiate_client_certificate,
    }
    if args.certificate:
        entry["certificateId"] = args.certificate
    if args.default:
        entry["defaultSslBinding"] = True
        configs = [{**c, "defaultSslBinding": False} for c in configs]
    previous = next((c for c in configs if c["hostName"].lower() == args.name.lower()), None)
    if previous is not None and not args.default:
        entry["defaultSslBinding"] = previous.get("defaultSslBinding", False)
    configs = [c for c in configs if c is not previous and c["hostName"] != args.name]
    configs.append(entry)
    body = {"properties": {"hostnameConfigurations": configs}}
    return client.patch("", body)["properties"]["hostnameConfigurations"]


def _hostname_list(client: ManagementClient, args: argparse.Namespace) -> list[dict]:
    return _service(client).get("hostnameConfigurations") or []


def _hostname_delete(client: ManagementClient, args: argparse.Namespace) -> None:
    configs = _service(client).get("hostnameConfigurations") or []
    kept = [c for c in configs if c["hostName"].lower() != args.name.lower()]
    if len(kept) == len(configs):
        raise CliError(f"no hostname configuration for {args.name}")
    client.patch("", {"properties": {"hostnameConfigurations": kept}})


def _service(client: ManagementClient) -> dict:
    return client.get("")["properties"]


# --- APIs, operations, backends, policies -----------------------------------------------------


def _api_create(client: ManagementClient, args: argparse.Namespace) -> dict:
    properties = {
        "displayName": args.display_name or args.id,
        "path": args.path,
        "serviceUrl": args.service_url,
        "protocols": [p.strip() for p in args.protocols.split(",") if p.strip()],
    }
    return client.put(f"apis/{args.id}", {"properties": properties})


def _api_credentials(client: ManagementClient, args: argparse.Namespace) -> dict:
    body = {"properties": {"certificateId": None if args.none else args.certificate}}
    return client.post(f"apis/{args.id}/gatewayCredentials", body)


def _operation_add(client: ManagementClient, args: argparse.Namespace) -> dict:
    properties = {
        "displayName": args.display_name or args.id,
        "method": args.method.upper(),
        "urlTemplate": args.url_template,
    }
    return client.put(f"apis/{args.api}/operations/{args.id}", {"properties": properties})


def _operation_list(client: ManagementClient, args: argparse.Namespace) -> list[dict]:
    return client.list(f"apis/{args.api}/operations")


def _operation_delete(client: ManagementClient, args: argparse.Namespace) -> None:
    client.delete(f"apis/{args.api}/operations/{args.id}")


def _backend_create(client: ManagementClient, args: argparse.Namespace) -> dict:
    properties: dict[str, Any] = {
        "url": args.url,
        "protocol": "http",
        "tls": {
            "validateCertificateChain": not args.skip_certificate_chain_validation,
            "validateCertificateName": not args.skip_certificate_name_validation,
        },
    }
    if args.title:
        properties["title"] = args.title
    if args.certificate:
        properties["credentials"] = {"certificateIds": args.certificate}
    return client.put(f"backends/{args.id}", {"properties": properties})


def _policy_path(args: argparse.Namespace) -> str:
    if args.operation and not args.api:
        raise CliError("--operation needs --api")
    if args.product:
        return f"products/{args.product}/policies/policy"
    if args.operation:
        return f"apis/{args.api}/operations/{args.operation}/policies/policy"
    if args.api:
        return f"apis/{args.api}/policies/policy"
    return "policies/policy"


def _policy_set(client: ManagementClient, args: argparse.Namespace) -> None:
    body = {"properties": {"format": "rawxml", "value": args.file.read_text()}}
    client.put(_policy_path(args), body)


def _policy_show(client: ManagementClient, args: argparse.Namespace) -> str:
    return client.get(_policy_path(args), params={"format": "rawxml"})["properties"]["value"]


def _policy_delete(client: ManagementClient, args: argparse.Namespace) -> None:
    client.delete(_policy_path(args))


# --- named values, products, fragments, CRLs --------------------------------------------------


def _named_value_set(client: ManagementClient, args: argparse.Namespace) -> dict:
    if args.value_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif args.value_file:
        value = args.value_file.read_text().rstrip("\r\n")
    else:
        value = args.value
    properties = {"displayName": args.display_name or args.id, "value": value}
    properties["secret"] = args.secret
    return client.put(f"namedValues/{args.id}", {"properties": properties})


def _product_create(client: ManagementClient, args: argparse.Namespace) -> dict:
    properties = {
        "displayName": args.display_name or args.id,
        "state": "published" if args.published else "notPublished",
    }
    if args.description:
        properties["description"] = args.description
    return client.put(f"products/{args.id}", {"properties": properties})


def _gateway_create(client: ManagementClient, args: argparse.Namespace) -> dict:
    location = {"name": args.location or args.id}
    for field, value in (("city", args.city), ("district", args.district)):
        if value:
            location[field] = value
    if args.country:
        location["countryOrRegion"] = args.country
    properties: dict[str, Any] = {"locationData": location}
    if args.description:
        properties["description"] = args.description
    return client.put(f"gateways/{args.id}", {"properties": properties})


def _gateway_add_ca(client: ManagementClient, args: argparse.Namespace) -> dict:
    body = {"properties": {"isTrusted": not args.intermediate}}
    return client.put(f"gateways/{args.gateway}/certificateAuthorities/{args.certificate}", body)


def _gateway_cas(client: ManagementClient, args: argparse.Namespace) -> list[dict]:
    return client.list(f"gateways/{args.gateway}/certificateAuthorities")


def _gateway_remove_ca(client: ManagementClient, args: argparse.Namespace) -> None:
    client.delete(f"gateways/{args.gateway}/certificateAuthorities/{args.certificate}")


def _product_add_api(client: ManagementClient, args: argparse.Namespace) -> dict:
    return client.put(f"products/{args.product}/apis/{args.api}", {})


def _product_remove_api(client: ManagementClient, args: argparse.Namespace) -> None:
    client.delete(f"products/{args.product}/apis/{args.api}")


def _product_apis(client: ManagementClient, args: argparse.Namespace) -> list[dict]:
    return client.list(f"products/{args.product}/apis")


def _fragment_set(client: ManagementClient, args: argparse.Namespace) -> dict:
    properties = {"format": "rawxml", "value": args.file.read_text()}
    if args.description:
        properties["description"] = args.description
    return client.put(f"policyFragments/{args.id}", {"properties": properties})


def _crl_add(client: ManagementClient, args: argparse.Namespace) -> dict:
    data = base64.b64encode(args.file.read_bytes()).decode()
    return client.put(f"certificateRevocationLists/{args.id}", {"properties": {"data": data}})


# --- status -----------------------------------------------------------------------------------


def _status(client: ManagementClient, args: argparse.Namespace) -> dict | str:
    document = client.status()
    if args.wait:
        client.wait_for_revision(document["properties"]["revision"], args.wait_timeout)
        document = client.status()
    if args.output == "json":
        return document
    properties = document["properties"]
    rows = [_status_row(worker) for worker in properties["workers"]]
    return f"store revision: {properties['revision']}\n{_table(rows)}"


def _status_row(worker: dict) -> dict:
    error = worker.get("lastError")
    return {
        "node": worker["node"],
        "worker": worker["worker"],
        "pid": worker["pid"],
        "live": "yes" if worker["live"] else "no",
        "revision": worker["revision"],
        "heartbeat": worker["heartbeat"],
        "lastError": f"revision {error['revision']}: {error['message']}" if error else "",
    }


# --- APIOps artifacts -------------------------------------------------------------------------


def _apiops_import(client: ManagementClient, args: argparse.Namespace) -> list[dict]:
    import yaml

    from certgate.apiops import layout, sync

    try:
        desired = layout.read_folder(args.dir)
        if args.configuration:
            sync.apply_overrides(desired, yaml.safe_load(args.configuration.read_text()))
    except (layout.LayoutError, yaml.YAMLError) as error:
        raise CliError(str(error)) from None
    plan = sync.plan(desired, sync.export(client), delete_missing=args.delete_missing)
    for note in plan.notes:
        print(f"note: {_printable(note)}", file=sys.stderr)
    if plan.problems:
        for problem in plan.problems:
            print(f"problem: {_printable(problem)}", file=sys.stderr)
        raise CliError(f"import refused: {len(plan.problems)} problem(s); nothing was written")
    if not args.dry_run:
        sync.apply(client, plan.steps)
    return [{"action": step.action, "resource": step.path} for step in plan.steps]


def _apiops_export(client: ManagementClient, args: argparse.Namespace) -> list[dict]:
    from certgate.apiops import layout, sync

    written = layout.write_folder(args.dir, sync.export(client))
    return [{"file": str(path.relative_to(args.dir))} for path in written]


# --- output -----------------------------------------------------------------------------------


def _print(result: Any, args: argparse.Namespace) -> None:
    if isinstance(result, str):
        print(_printable(result, keep="\n\t"))
    elif args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        print(_table(result if isinstance(result, list) else [result]))


def _table(rows: list[dict]) -> str:
    flat = [_flat_row(row) for row in rows]
    if not flat:
        return "(none)"
    columns = list(dict.fromkeys(key for row in flat for key in row))
    cells = [{c: _printable(str(row.get(c, ""))) for c in columns} for row in flat]
    columns_shown = {c: _printable(c) for c in columns}
    widths = {c: max(len(columns_shown[c]), *(len(row[c]) for row in cells)) for c in columns}
    lines = ["  ".join(columns_shown[c].ljust(widths[c]) for c in columns)]
    lines += ["  ".join(row[c].ljust(widths[c]) for c in columns) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


# C0/C1 controls, DEL, and the invisible formatting characters that reorder or hide text
# (bidirectional overrides, zero-width): a certificate subject may carry any of them.
_UNPRINTABLE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def _printable(text: str, keep: str = "") -> str:
    """`text` with terminal control characters shown as escapes (`\\x1b`), never sent raw."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in keep:
            return char
        return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"

    return _UNPRINTABLE.sub(escape, text)


def _flat_row(row: dict) -> dict:
    """ARM resources print as their name plus scalar properties; nested values as compact JSON."""
    properties = row.get("properties", row)
    flat = {"name": row["name"]} if "name" in row and "properties" in row else {}
    for key, value in properties.items():
        flat[key] = json.dumps(value) if isinstance(value, dict | list) else value
    return flat


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    main()
