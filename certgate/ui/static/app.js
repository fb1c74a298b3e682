// certgate admin page: builds the DOM from elements and text nodes only (no HTML parsing), so
// every subject, name and policy text is displayed as text; control characters are made visible.
"use strict";

const state = { csrf: null, rendering: Promise.resolve() };
const SOON_DAYS = 30;
const DAY = 86400000;
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

// Control and bidi characters as visible symbols: ESC -> ␛, U+202E -> <U+202E>.
function visible(value) {
  return String(value ?? "").replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    if (code < 0x20) return String.fromCharCode(0x2400 + code);
    if (code === 0x7f) return "\u2421";
    return "<U+" + code.toString(16).toUpperCase().padStart(4, "0") + ">";
  });
}

const PROPERTIES = new Set(["checked", "disabled", "selected", "value", "hidden", "multiple"]);

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (PROPERTIES.has(key)) node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(visible(child)));
  }
  return node;
}

function segment(id) {
  return encodeURIComponent(id);
}

// -- HTTP -------------------------------------------------------------------------------------
async function request(method, url, body, headers) {
  const init = { method, credentials: "same-origin", headers: { ...(headers || {}) } };
  if (method !== "GET") init.headers["X-CSRF-Token"] = state.csrf || "";
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: { message: text } };
  }
  if (response.status === 401) showSignIn(false);
  return { status: response.status, ok: response.ok, data };
}

function api(method, path, body, headers) {
  return request(method, "/ui/api/" + path, body, headers);
}

async function listOf(path) {
  const sep = path.includes("?") ? "&" : "?";
  const answer = await api("GET", path + sep + "$top=1000");
  return answer.ok ? answer.data.value : [];
}

// -- shared pieces ----------------------------------------------------------------------------
function errorBox(answer) {
  const error = (answer.data && answer.data.error) || { message: "HTTP " + answer.status };
  const details = (error.details || []).filter((d) => d.message && d.message !== error.message);
  return h(
    "div",
    { class: "error", role: "alert" },
    h("strong", {}, error.code ? error.code + ": " : ""),
    error.message,
    details.length ? h("ul", {}, details.map((d) => h("li", {}, d.message))) : null,
  );
}

function notice(text) {
  return h("div", { class: "ok", role: "status" }, text);
}

// Each cell carries its column name, which narrow windows show beside the value (app.css).
function table(headers, rows) {
  for (const row of rows) {
    [...row.children].forEach((cell, index) => headers[index] && cell.setAttribute("data-label", headers[index]));
  }
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", {}, name)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "None yet."))),
    ),
  );
}

function field(label, input) {
  return h("label", {}, label, input);
}

function checkbox(label, attrs) {
  return h("label", { class: "check" }, h("input", { type: "checkbox", ...attrs }), label);
}

function daysLeft(iso) {
  return Math.floor((Date.parse(iso) - Date.now()) / DAY);
}

function expiryClass(iso) {
  const days = daysLeft(iso);
  if (days < 0) return "expired";
  return days <= SOON_DAYS ? "soon" : "";
}

function expiryText(iso) {
  if (!iso) return "";
  const days = daysLeft(iso);
  const when = iso.slice(0, 10);
  if (days < 0) return when + " (expired)";
  return when + " (" + days + " days)";
}

async function fileBase64(input) {
  const file = input.files[0];
  if (!file) return "";
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

// A page section: `out` shows the result of the last action above the content.
function page(title, ...content) {
  const out = h("div", { class: "messages" });
  const view = document.getElementById("app");
  view.replaceChildren(h("h1", {}, title), out, ...content.flat());
  return out;
}

function say(out, node) {
  out.replaceChildren(node);
}

// After a change: the API's refusal above the page as it is, or the page re-rendered and confirmed.
async function settle(answer, out, reload, message) {
  if (!answer.ok) return say(out, errorBox(answer));
  await reload();
  if (message) say(document.querySelector(".messages"), notice(message));
}

function policyLink(scope) {
  return h("a", { href: "#policy/" + scope }, scope ? "Policy" : "Global policy");
}

// A store path that references a certificate, linked to the page that edits it.
function referrerLink(path) {
  const policy = /^(.*?)\/?policies\/policy$/.exec(path);
  if (policy) return h("a", { href: "#policy/" + policy[1] }, path);
  if (path === "service") return h("a", { href: "#hostnames" }, "custom domains");
  if (path.startsWith("backends/")) return h("a", { href: "#backends" }, path);
  return path;
}

// -- certificates -----------------------------------------------------------------------------
async function certificatesPage() {
  const [certificates, usage, identities] = await Promise.all([
    listOf("certificates"),
    request("GET", "/ui/usage"),
    listOf("keyVaultIdentities"),
  ]);
  const usedBy = usage.ok ? usage.data : {};
  const rows = certificates.map((c) => {
    const p = c.properties;
    const vault = p.keyVault;
    const users = usedBy["certificates/" + c.name] || [];
    return h(
      "tr",
      { class: expiryClass(p.expirationDate), "data-name": c.name },
      h("td", {}, c.name),
      h("td", { class: "subject" }, p.subject),
      h("td", { class: "mono" }, p.thumbprint),
      h("td", { class: "expiry" }, expiryText(p.expirationDate)),
      h("td", {}, p.hasPrivateKey ? "Yes" : "No"),
      h(
        "td",
        { class: "source" },
        vault
          ? [
              h("div", {}, "Key vault"),
              h("div", { class: "mono" }, vault.secretIdentifier),
              vault.lastStatus
                ? h(
                    "div",
                    { class: "last-status" },
                    h("span", { class: vault.lastStatus.code === "Success" ? "badge" : "badge bad" }, vault.lastStatus.code),
                    " ",
                    vault.lastStatus.message,
                    " ",
                    h("span", { class: "muted" }, vault.lastStatus.timeStampUtc),
                  )
                : null,
              h("button", { type: "button", class: "secondary", onclick: () => refresh(c.name) }, "Refresh"),
            ]
          : "Upload",
      ),
      h("td", { class: "used-by" }, users.length ? h("ul", { class: "plain" }, users.map((u) => h("li", {}, referrerLink(u)))) : h("span", { class: "muted" }, "Not used")),
      h("td", {}, h("button", { type: "button", class: "danger", onclick: () => remove(c.name) }, "Delete")),
    );
  });

  const pfxId = h("input", { type: "text", name: "id", required: true, pattern: "[A-Za-z0-9._\\-]+" });
  const pfxFile = h("input", { type: "file", name: "file", required: true, accept: ".pfx,.p12,.cer,.crt,.pem,.der" });
  const pfxPassword = h("input", { type: "password", name: "password", autocomplete: "off" });
  const vaultId = h("input", { type: "text", name: "id", required: true });
  const vaultSecret = h("input", { type: "url", name: "secretIdentifier", required: true, placeholder: "https://vault.example/v1/secret/data/name" });
  const vaultIdentity = h(
    "select",
    { name: "identityClientId" },
    h("option", { value: "" }, "(service credentials)"),
    identities.map((i) => h("option", { value: i.name }, i.name)),
  );

  const out = page(
    "Certificates",
    table(["Name", "Subject", "Thumbprint", "Expires", "Private key", "Source", "Used by", ""], rows),
    h("h2", {}, "Add a certificate: upload"),
    h("form", { class: "card inline", id: "upload-form", onsubmit: upload }, field("Id", pfxId), field("PFX / certificate file", pfxFile), field("Password", pfxPassword), h("button", { type: "submit" }, "Upload")),
    h("h2", {}, "Add a certificate: key vault"),
    h("form", { class: "card inline", id: "keyvault-form", onsubmit: reference }, field("Id", vaultId), field("Secret identifier", vaultSecret), field("Identity", vaultIdentity), h("button", { type: "submit" }, "Add")),
  );

  async function upload(event) {
    event.preventDefault();
    const properties = { data: await fileBase64(pfxFile) };
    if (pfxPassword.value) properties.password = pfxPassword.value;
    const answer = await api("PUT", "certificates/" + segment(pfxId.value.trim()), { properties });
    pfxPassword.value = "";
    return settle(answer, out, certificatesPage, "Certificate '" + pfxId.value.trim() + "' saved.");
  }

  async function reference(event) {
    event.preventDefault();
    const keyVault = { secretIdentifier: vaultSecret.value.trim() };
    if (vaultIdentity.value) keyVault.identityClientId = vaultIdentity.value;
    const answer = await api("PUT", "certificates/" + segment(vaultId.value.trim()), { properties: { keyVault } });
    return settle(answer, out, certificatesPage, "Key vault certificate '" + vaultId.value.trim() + "' saved.");
  }

  // The API answers 200 either way; the outcome of the fetch is the certificate's lastStatus.
  async function refresh(name) {
    const answer = await api("POST", "certificates/" + segment(name) + "/refreshSecret", {});
    const last = answer.ok ? answer.data.properties.keyVault.lastStatus : null;
    if (!last || last.code === "Success") {
      return settle(answer, out, certificatesPage, "Certificate '" + name + "' refreshed from the key vault.");
    }
    await certificatesPage();
    say(document.querySelector(".messages"), h("div", { class: "error", role: "alert" }, "Refresh of '" + name + "' failed: " + last.code + ": " + last.message));
  }

  async function remove(name) {
    const answer = await api("DELETE", "certificates/" + segment(name), undefined, { "If-Match": "*" });
    return settle(answer, out, certificatesPage, "Certificate '" + name + "' deleted.");
  }
}

// -- CA certificates and CRLs -----------------------------------------------------------------
async function caPage() {
  const [service, crls] = await Promise.all([api("GET", ""), listOf("certificateRevocationLists")]);
  const cas = service.ok ? service.data.properties.certificates : [];
  const kept = (skip) =>
    cas.filter((_, i) => i !== skip).map((c) => ({ storeName: c.storeName, certificate: { thumbprint: c.certificate.thumbprint } }));
  const caRows = cas.map((c, index) =>
    h(
      "tr",
      { class: expiryClass(c.certificate.expiry) },
      h("td", {}, c.storeName),
      h("td", { class: "subject" }, c.certificate.subject),
      h("td", { class: "mono" }, c.certificate.thumbprint),
      h("td", { class: "expiry" }, expiryText(c.certificate.expiry)),
      h("td", {}, h("button", { type: "button", class: "danger", onclick: () => saveCas(kept(index), "CA certificate removed.") }, "Remove")),
    ),
  );
  const crlRows = crls.map((r) =>
    h(
      "tr",
      {},
      h("td", {}, r.name),
      h("td", { class: "subject" }, r.properties.issuer),
      h("td", {}, r.properties.thisUpdate),
      h("td", {}, r.properties.nextUpdate),
      h("td", {}, r.properties.revokedCount),
      h("td", {}, h("button", { type: "button", class: "danger", onclick: () => removeCrl(r.name) }, "Delete")),
    ),
  );
  const storeName = h("select", { name: "storeName" }, h("option", { value: "Root" }, "Root"), h("option", { value: "CertificateAuthority" }, "CertificateAuthority"));
  const caFile = h("input", { type: "file", name: "file", required: true });
  const caPassword = h("input", { type: "password", name: "password", autocomplete: "off" });
  const crlId = h("input", { type: "text", name: "id", required: true });
  const crlFile = h("input", { type: "file", name: "file", required: true });

  const out = page(
    "CA certificates",
    table(["Store", "Subject", "Thumbprint", "Expires", ""], caRows),
    h("h2", {}, "Add a CA certificate"),
    h("form", { class: "card inline", id: "ca-form", onsubmit: addCa }, field("Store", storeName), field("Certificate file", caFile), field("Password (PFX)", caPassword), h("button", { type: "submit" }, "Add")),
    h("h2", {}, "Certificate revocation lists"),
    table(["Id", "Issuer", "This update", "Next update", "Revoked", ""], crlRows),
    h("form", { class: "card inline", id: "crl-form", onsubmit: addCrl }, field("Id", crlId), field("CRL file (DER or PEM)", crlFile), h("button", { type: "submit" }, "Upload CRL")),
  );

  async function addCa(event) {
    event.preventDefault();
    const entry = { storeName: storeName.value, encodedCertificate: await fileBase64(caFile) };
    if (caPassword.value) entry.certificatePassword = caPassword.value;
    caPassword.value = "";
    await saveCas([...kept(-1), entry], "CA certificate added to " + storeName.value + ".");
  }

  async function saveCas(certificates, message) {
    const answer = await api("PATCH", "", { properties: { certificates } });
    return settle(answer, out, caPage, message);
  }

  async function addCrl(event) {
    event.preventDefault();
    const answer = await api("PUT", "certificateRevocationLists/" + segment(crlId.value.trim()), { properties: { data: await fileBase64(crlFile) } });
    return settle(answer, out, caPage, "CRL '" + crlId.value.trim() + "' uploaded.");
  }

  async function removeCrl(name) {
    const answer = await api("DELETE", "certificateRevocationLists/" + segment(name), undefined, { "If-Match": "*" });
    return settle(answer, out, caPage);
  }
}

// -- custom domains ---------------------------------------------------------------------------
async function hostnamesPage() {
  const [service, certificates] = await Promise.all([api("GET", ""), listOf("certificates")]);
  const hosts = service.ok ? service.data.properties.hostnameConfigurations : [];
  const rows = hosts.map((entry, index) =>
    h(
      "tr",
      { "data-host": entry.hostName },
      h("td", {}, entry.hostName),
      h("td", {}, entry.certificateId || h("span", { class: "muted" }, "development certificate")),
      h(
        "td",
        {},
        checkbox("Negotiate client certificate", {
          class: "negotiate",
          checked: Boolean(entry.negotiateClientCertificate),
          onchange: (event) => saveHosts(hosts.map((e, i) => (i === index ? { ...e, negotiateClientCertificate: event.target.checked } : e)), "Saved " + entry.hostName + "."),
        }),
      ),
      h("td", {}, entry.defaultSslBinding ? "Yes" : "No"),
      h("td", {}, h("button", { type: "button", class: "danger", onclick: () => saveHosts(hosts.filter((_, i) => i !== index), "Removed " + entry.hostName + ".") }, "Remove")),
    ),
  );
  const hostName = h("input", { type: "text", name: "hostName", required: true, placeholder: "api.example.com" });
  const certificate = h(
    "select",
    { name: "certificateId" },
    h("option", { value: "" }, "(development certificate)"),
    certificates.filter((c) => c.properties.hasPrivateKey).map((c) => h("option", { value: c.name }, c.name + " (" + c.properties.subject + ")")),
  );
  const negotiate = h("input", { type: "checkbox", name: "negotiateClientCertificate" });

  const out = page(
    "Custom domains",
    table(["Host name", "Certificate", "Client certificates", "Default SSL binding", ""], rows),
    h("h2", {}, "Add a host name"),
    h(
      "form",
      { class: "card inline", id: "hostname-form", onsubmit: add },
      field("Host name", hostName),
      field("Certificate", certificate),
      h("label", { class: "check" }, negotiate, "Negotiate client certificate"),
      h("button", { type: "submit" }, "Add"),
    ),
  );

  async function add(event) {
    event.preventDefault();
    const entry = { type: "Proxy", hostName: hostName.value.trim(), negotiateClientCertificate: negotiate.checked };
    if (certificate.value) entry.certificateId = certificate.value;
    await saveHosts([...hosts, entry], "Added " + entry.hostName + ".");
  }

  async function saveHosts(hostnameConfigurations, message) {
    const answer = await api("PATCH", "", { properties: { hostnameConfigurations } });
    return settle(answer, out, hostnamesPage, message);
  }
}

// -- key vault identities (secrets are write-only: the API never returns them) ----------------
async function vaultsPage() {
  const identities = await listOf("keyVaultIdentities");
  const rows = identities.map((i) =>
    h(
      "tr",
      {},
      h("td", {}, i.name),
      h("td", { class: "mono" }, i.properties.vaultAddress),
      h("td", {}, i.properties.authentication),
      h("td", {}, i.properties.description || ""),
      h("td", {}, h("button", { type: "button", class: "danger", onclick: () => remove(i.name) }, "Delete")),
    ),
  );
  const id = h("input", { type: "text", name: "id", required: true });
  const address = h("input", { type: "url", name: "vaultAddress", required: true, placeholder: "https://vault.example:8200" });
  const token = h("input", { type: "password", name: "token", autocomplete: "off" });
  const roleId = h("input", { type: "password", name: "roleId", autocomplete: "off" });
  const secretId = h("input", { type: "password", name: "secretId", autocomplete: "off" });
  const out = page(
    "Key vault identities",
    h("p", { class: "muted" }, "Tokens and AppRole secrets are stored sealed and are never shown again."),
    table(["Id", "Vault address", "Authentication", "Description", ""], rows),
    h("h2", {}, "Add an identity"),
    h("form", { class: "card inline", id: "identity-form", onsubmit: add }, field("Id", id), field("Vault address", address), field("Token", token), field("or AppRole role-id", roleId), field("and secret-id", secretId), h("button", { type: "submit" }, "Save")),
  );

  async function add(event) {
    event.preventDefault();
    const properties = { vaultAddress: address.value.trim() };
    for (const input of [token, roleId, secretId]) if (input.value) properties[input.name] = input.value;
    for (const input of [token, roleId, secretId]) input.value = "";
    const answer = await api("PUT", "keyVaultIdentities/" + segment(id.value.trim()), { properties });
    return settle(answer, out, vaultsPage, "Identity '" + id.value.trim() + "' saved.");
  }

  async function remove(name) {
    const answer = await api("DELETE", "keyVaultIdentities/" + segment(name), undefined, { "If-Match": "*" });
    return settle(answer, out, vaultsPage);
  }
}

// -- APIs and operations ----------------------------------------------------------------------
async function apisPage() {
  const [apis, products] = await Promise.all([listOf("apis"), listOf("products")]);
  const operations = await Promise.all(apis.map((a) => listOf("apis/" + segment(a.name) + "/operations")));
  const rows = apis.map((a, index) =>
    h(
      "tr",
      { "data-api": a.name },
      h("td", {}, a.name),
      h("td", {}, a.properties.displayName),
      h("td", { class: "mono" }, "/" + a.properties.path),
      h("td", { class: "mono" }, a.properties.serviceUrl || ""),
      h(
        "td",
        {},
        h(
          "ul",
          { class: "plain" },
          operations[index].map((o) =>
            h("li", {}, h("span", { class: "mono" }, o.properties.method + " " + o.properties.urlTemplate), " ", o.name, " ", h("a", { href: "#policy/apis/" + a.name + "/operations/" + o.name }, "Policy")),
          ),
        ),
      ),
      h("td", {}, policyLink("apis/" + a.name)),
      h("td", {}, h("button", { type: "button", class: "danger", onclick: () => remove(a.name) }, "Delete")),
    ),
  );
  const id = h("input", { type: "text", name: "id", required: true });
  const displayName = h("input", { type: "text", name: "displayName" });
  const path = h("input", { type: "text", name: "path", placeholder: "orders" });
  const serviceUrl = h("input", { type: "url", name: "serviceUrl", placeholder: "https://backend.example" });
  const opApi = h("select", { name: "api" }, apis.map((a) => h("option", { value: a.name }, a.name)));
  const opId = h("input", { type: "text", name: "operationId", required: true });
  const opMethod = h("select", { name: "method" }, ["GET", "POST", "PUT", "PATCH", "DELETE", "*"].map((m) => h("option", { value: m }, m)));
  const opTemplate = h("input", { type: "text", name: "urlTemplate", required: true, value: "/" });

  const out = page(
    "APIs",
    h("p", {}, policyLink(""), products.map((p) => [" · ", h("a", { href: "#policy/products/" + p.name }, "Product '" + p.name + "' policy")])),
    table(["Id", "Display name", "Path", "Web service URL", "Operations", "Policy", ""], rows),
    h("h2", {}, "Add an API"),
    h("form", { class: "card inline", id: "api-form", onsubmit: addApi }, field("Id", id), field("Display name", displayName), field("API URL suffix", path), field("Web service URL", serviceUrl), h("button", { type: "submit" }, "Create")),
    h("h2", {}, "Add an operation"),
    h("form", { class: "card inline", id: "operation-form", onsubmit: addOperation }, field("API", opApi), field("Id", opId), field("Method", opMethod), field("URL template", opTemplate), h("button", { type: "submit" }, "Add")),
  );

  async function addApi(event) {
    event.preventDefault();
    const properties = { displayName: displayName.value || id.value.trim(), path: path.value.trim() };
    if (serviceUrl.value) properties.serviceUrl = serviceUrl.value.trim();
    return settle(await api("PUT", "apis/" + segment(id.value.trim()), { properties }), out, apisPage, "API '" + id.value.trim() + "' saved.");
  }

  async function addOperation(event) {
    event.preventDefault();
    const properties = { displayName: opId.value.trim(), method: opMethod.value, urlTemplate: opTemplate.value.trim() };
    const where = "apis/" + segment(opApi.value) + "/operations/" + segment(opId.value.trim());
    return settle(await api("PUT", where, { properties }), out, apisPage, "Operation '" + opId.value.trim() + "' saved.");
  }

  async function remove(name) {
    return settle(await api("DELETE", "apis/" + segment(name), undefined, { "If-Match": "*" }), out, apisPage, "API '" + name + "' deleted.");
  }
}

// -- the policy editor, at every scope: "" (global), products/p, apis/a, apis/a/operations/o -----
const EMPTY_POLICY =
  "<policies>\n  <inbound>\n    <base />\n  </inbound>\n  <backend>\n    <base />\n  </backend>\n" +
  "  <outbound>\n    <base />\n  </outbound>\n  <on-error>\n    <base />\n  </on-error>\n</policies>";
const POSITION = /line (\d+), (?:column|position) (\d+)/i;

function scopeTitle(scope) {
  if (!scope) return "Global policy (all APIs)";
  const parts = scope.split("/");
  if (parts[0] === "products") return "Product '" + parts[1] + "' policy";
  if (parts.length === 2) return "API '" + parts[1] + "' policy";
  return "Operation '" + parts[3] + "' of API '" + parts[1] + "' policy";
}

function policyPath(scope) {
  const base = scope.split("/").map(segment).join("/");
  return (base ? base + "/" : "") + "policies/policy";
}

async function policyPage(scope) {
  const isApi = /^apis\/[^/]+$/.test(scope);
  const [current, certificates] = await Promise.all([api("GET", policyPath(scope) + "?format=rawxml"), isApi ? listOf("certificates") : []]);
  const editor = h("textarea", { class: "policy", id: "policy-xml", spellcheck: "false", "aria-label": "Policy XML" });
  editor.value = current.ok ? current.data.properties.value : EMPTY_POLICY;
  const position = h("span", { class: "muted", id: "policy-position" });
  editor.addEventListener("keyup", () => showCaret(editor, position));
  editor.addEventListener("click", () => showCaret(editor, position));

  let credentials = null;
  const selector = h(
    "select",
    { name: "certificateId", id: "gateway-certificate" },
    h("option", { value: "" }, "(none)"),
    certificates.filter((c) => c.properties.hasPrivateKey).map((c) => h("option", { value: c.name }, c.name + " (" + c.properties.subject + ")")),
  );
  if (isApi) {
    const match = /<authentication-certificate\b[^>]*certificate-id="([^"]*)"/.exec(editor.value);
    if (match) selector.value = match[1];
    credentials = h(
      "form",
      { class: "card inline", id: "gateway-credentials-form", onsubmit: attach },
      h("strong", {}, "Gateway credentials: client certificate"),
      field("Certificate", selector),
      h("button", { type: "submit", class: "secondary" }, "Apply"),
    );
  }
  const back = h("a", { href: "#apis" }, "← APIs");
  const out = page(
    scopeTitle(scope),
    h("p", {}, back),
    credentials,
    h("div", { class: "toolbar" }, h("button", { type: "button", id: "policy-save", onclick: save }, "Save"), position),
    editor,
  );

  async function save() {
    const answer = await api("PUT", policyPath(scope), { properties: { format: "rawxml", value: editor.value } });
    if (!answer.ok) {
      say(out, errorBox(answer));
      const found = POSITION.exec((answer.data && answer.data.error && answer.data.error.message) || "");
      if (found) {
        const where = h("div", { class: "error", id: "policy-error-position" }, "At line " + found[1] + ", column " + found[2] + ".");
        out.append(where);
        selectPosition(editor, Number(found[1]), Number(found[2]));
      }
      return;
    }
    say(out, notice("Policy saved."));
  }

  async function attach(event) {
    event.preventDefault();
    const certificateId = selector.value || null;
    const answer = await api("POST", "apis/" + segment(scope.split("/")[1]) + "/gatewayCredentials", { properties: { certificateId } });
    return settle(answer, out, () => policyPage(scope), certificateId ? "Gateway credentials set: the policy now holds <authentication-certificate certificate-id=\"" + certificateId + "\" />." : "Gateway credentials removed.");
  }
}

function lineStart(text, line) {
  let offset = 0;
  for (let n = 1; n < line; n += 1) {
    const next = text.indexOf("\n", offset);
    if (next < 0) return text.length;
    offset = next + 1;
  }
  return offset;
}

function selectPosition(editor, line, column) {
  const start = Math.min(lineStart(editor.value, line) + Math.max(column - 1, 0), editor.value.length);
  const end = editor.value.indexOf("\n", start);
  editor.focus();
  editor.setSelectionRange(start, end < 0 ? editor.value.length : end);
}

function showCaret(editor, position) {
  const before = editor.value.slice(0, editor.selectionStart).split("\n");
  position.textContent = "Line " + before.length + ", column " + (before[before.length - 1].length + 1);
}

// -- backends ---------------------------------------------------------------------------------
async function backendsPage() {
  const [backends, certificates] = await Promise.all([listOf("backends"), listOf("certificates")]);
  const rows = backends.map((b) => {
    const p = b.properties;
    const tls = p.tls || {};
    const ids = (p.credentials && p.credentials.certificateIds) || [];
    const toggle = (name, label) => async (event) => {
      const on = event.target.checked;
      const answer = await api("PATCH", "backends/" + segment(b.name), { properties: { tls: { ...tls, [name]: on } } });
      return settle(answer, out, backendsPage, "Backend '" + b.name + "': " + label + (on ? " on." : " off."));
    };
    return h(
      "tr",
      { "data-backend": b.name },
      h("td", {}, b.name),
      h("td", { class: "mono" }, p.url),
      h("td", {}, ids.length ? ids.join(", ") : h("span", { class: "muted" }, "none")),
      h("td", {}, checkbox("Validate certificate chain", { class: "chain", checked: tls.validateCertificateChain !== false, onchange: toggle("validateCertificateChain", "validate certificate chain") })),
      h("td", {}, checkbox("Validate certificate name", { class: "name", checked: tls.validateCertificateName !== false, onchange: toggle("validateCertificateName", "validate certificate name") })),
      h("td", {}, h("button", { type: "button", class: "danger", onclick: () => remove(b.name) }, "Delete")),
    );
  });
  const id = h("input", { type: "text", name: "id", required: true });
  const url = h("input", { type: "url", name: "url", required: true, placeholder: "https://backend.example" });
  const certificate = h(
    "select",
    { name: "certificateId" },
    h("option", { value: "" }, "(no client certificate)"),
    certificates.filter((c) => c.properties.hasPrivateKey).map((c) => h("option", { value: c.name }, c.name + " (" + c.properties.subject + ")")),
  );
  const chain = h("input", { type: "checkbox", name: "validateCertificateChain", checked: true });
  const name = h("input", { type: "checkbox", name: "validateCertificateName", checked: true });
  const out = page(
    "Backends",
    table(["Id", "URL", "Client certificate", "Chain", "Name", ""], rows),
    h("h2", {}, "Add a backend"),
    h(
      "form",
      { class: "card inline", id: "backend-form", onsubmit: add },
      field("Id", id),
      field("URL", url),
      field("Client certificate", certificate),
      h("label", { class: "check" }, chain, "Validate certificate chain"),
      h("label", { class: "check" }, name, "Validate certificate name"),
      h("button", { type: "submit" }, "Save"),
    ),
  );

  async function add(event) {
    event.preventDefault();
    const properties = { url: url.value.trim(), protocol: "http", tls: { validateCertificateChain: chain.checked, validateCertificateName: name.checked } };
    if (certificate.value) properties.credentials = { certificateIds: [certificate.value] };
    const answer = await api("PUT", "backends/" + segment(id.value.trim()), { properties });
    return settle(answer, out, backendsPage, "Backend '" + id.value.trim() + "' saved.");
  }

  async function remove(backend) {
    const answer = await api("DELETE", "backends/" + segment(backend), undefined, { "If-Match": "*" });
    return settle(answer, out, backendsPage);
  }
}

// -- status -----------------------------------------------------------------------------------
// `GET /status` (the management API's worker status resource) lists every gateway worker with the
// revision it serves and its last compile error; without that resource only the store revision shows.
const WORKER_COLUMNS = [
  ["Node", (w) => w.node],
  ["Worker", (w) => w.worker],
  ["PID", (w) => w.pid],
  ["Live", (w) => (w.live ? "yes" : "no")],
  ["Serves revision", (w) => w.revision],
  ["Last compile error", (w) => (w.lastError ? w.lastError.message + " (revision " + w.lastError.revision + ")" : "")],
  ["Heartbeat", (w) => w.heartbeat],
];

async function statusPage() {
  const [revision, status, certificates, service] = await Promise.all([
    request("GET", "/ui/revision"),
    api("GET", "status"),
    listOf("certificates"),
    api("GET", ""),
  ]);
  const workers = (status.ok && status.data.properties.workers) || [];
  const errors = workers.filter((w) => w.lastError).sort((a, b) => b.lastError.revision - a.lastError.revision);
  const expiries = [
    ...certificates.map((c) => ({ what: "certificate " + c.name, subject: c.properties.subject, expiry: c.properties.expirationDate })),
    ...(service.ok ? service.data.properties.certificates : []).map((c) => ({ what: c.storeName + " CA", subject: c.certificate.subject, expiry: c.certificate.expiry })),
  ].sort((a, b) => Date.parse(a.expiry) - Date.parse(b.expiry));

  page(
    "Status",
    h("div", { class: "card" }, h("div", {}, "Store revision: ", h("strong", { id: "store-revision" }, revision.ok ? String(revision.data.revision) : "?"))),
    h("h2", {}, "Workers"),
    status.ok
      ? table(
          WORKER_COLUMNS.map(([title]) => title),
          workers.map((w) => h("tr", { class: w.lastError ? "expired" : "" }, WORKER_COLUMNS.map(([, value]) => h("td", {}, value(w))))),
        )
      : h("p", { class: "muted" }, "This management API reports no per-worker status; the gateway follows the store revision above."),
    h("h2", {}, "Last compile error"),
    errors.length
      ? h("div", { class: "error", id: "compile-error" }, "Revision " + errors[0].lastError.revision + " (worker " + errors[0].worker + "): " + errors[0].lastError.message)
      : h("p", { class: "muted" }, "None reported."),
    h("h2", {}, "Certificate expiries"),
    h(
      "ol",
      { class: "timeline card", id: "expiry-timeline" },
      expiries.map((e) =>
        h(
          "li",
          { class: expiryClass(e.expiry) },
          h("span", { class: "mono" }, expiryText(e.expiry)),
          h("meter", { min: 0, max: 365, low: SOON_DAYS, high: 90, optimum: 365, value: Math.max(0, Math.min(365, daysLeft(e.expiry))) }),
          h("span", {}, e.what, " — ", h("span", { class: "subject" }, e.subject)),
        ),
      ),
    ),
  );
}

// -- navigation and session -------------------------------------------------------------------
const PAGES = {
  certificates: certificatesPage,
  ca: caPage,
  hostnames: hostnamesPage,
  vaults: vaultsPage,
  apis: apisPage,
  backends: backendsPage,
  status: statusPage,
};

// Renders one page at a time, so a slow page never overwrites the one navigated to after it.
function render() {
  state.rendering = state.rendering.then(renderNow, renderNow);
  return state.rendering;
}

async function renderNow() {
  const hash = decodeURIComponent(location.hash.slice(1)) || "certificates";
  const [name, ...rest] = hash.split("/");
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === "#" + (name === "policy" ? "apis" : name));
  }
  const app = document.getElementById("app");
  app.setAttribute("aria-busy", "true");
  if (name === "policy") await policyPage(rest.join("/"));
  else await (PAGES[name] || certificatesPage)();
  app.setAttribute("aria-busy", "false");
}

function showSignIn(failed) {
  state.csrf = null;
  document.getElementById("app").hidden = true;
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("signin").hidden = false;
  document.getElementById("signin-failed").hidden = !failed;
}

async function signOut() {
  await request("POST", "/ui/signout");
  showSignIn(false);
}

async function start() {
  document.getElementById("signout").addEventListener("click", signOut);
  const failed = new URLSearchParams(location.search).get("signin") === "failed";
  const session = await request("GET", "/ui/session");
  if (!session.ok) return showSignIn(failed);
  state.csrf = session.data.csrfToken;
  document.getElementById("signin").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  document.getElementById("app").hidden = false;
  window.addEventListener("hashchange", render);
  await render();
}

start();
