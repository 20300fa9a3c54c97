// The Compute Health page: reads api/health and draws it; the release form posts to the API.
// Every value is put in the page as text (never as HTML): error messages come from providers.
"use strict";

const COLORS = ["#d1495b", "#edae49", "#00798c", "#30638e", "#003d5b", "#8e6c8a", "#66a182", "#c97b63"];
// The Airflow UI's base path: this page lives at <base>compute-health/
const UI_BASE = location.pathname.replace(/compute-health\/.*$/, "");
const params = new URLSearchParams(location.search);
// Every change carries this header: a cross-site form cannot set it (api.py refuses without it).
const CHANGE_HEADERS = { "Content-Type": "application/json", "X-Compute-Health-Request": "1" };
// The API sends tenants and pending cleanup a page at a time; where each list is.
const offsets = { tenants: 0, cleanup: 0 };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key === "href" || key === "target" || key === "title" || key === "type" || key === "placeholder" || key === "rel")
      node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function say(text, kind) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = kind || "info";
  box.hidden = !text;
}

function errorBadge(error) {
  if (!error) return el("span", { class: "muted" }, "none");
  return el("span", { class: `badge ${error.classification}`, "data-field": "code", title: error.classification }, error.code);
}

function taskLink(ref, text) {
  if (!ref) return el("span", { class: "muted" }, text || "");
  // target _top: leave the UI's iframe for the task instance page
  return el("a", { href: UI_BASE + ref.path, target: "_top", "data-field": "task-link" }, text || `${ref.dag_id} / ${ref.task_id}`);
}

async function api(path, options) {
  const response = await fetch(path, { credentials: "same-origin", ...(options || {}) });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function drawCounts(counts) {
  const box = document.getElementById("counts");
  box.replaceChildren(
    ...Object.entries(counts).map(([state, n]) =>
      el("div", { class: `count ${state}${n ? "" : " zero"}`, "data-count": state }, el("strong", {}, n), el("span", {}, state.replaceAll("_", " ")))
    )
  );
}

function releaseCell(tenant) {
  if (!tenant.can_release) return el("span", { class: "muted" }, "not allowed for you");
  const note = el("input", { type: "text", placeholder: "why it is safe to release", "data-release-note": tenant.tenant_id });
  const button = el("button", { type: "button", "data-release": tenant.tenant_id }, "Release");
  button.addEventListener("click", async () => {
    if (!note.value.trim()) {
      say(`Write a note saying why tenant ${tenant.tenant_id} may take new work.`, "error");
      note.focus();
      return;
    }
    button.disabled = true;
    try {
      await api(`api/tenants/${encodeURIComponent(tenant.tenant_id)}/release`, {
        method: "POST",
        headers: CHANGE_HEADERS,
        body: JSON.stringify({ note: note.value.trim(), expected_version: tenant.version }),
      });
      say(`Tenant ${tenant.tenant_id} released.`, "ok");
      await load();
    } catch (exc) {
      say(`Release of ${tenant.tenant_id} refused: ${exc.message}`, "error");
      button.disabled = false;
    }
  });
  return el("div", { class: "release" }, note, button);
}

function drawPager(name, page) {
  const first = page.total ? page.offset + 1 : 0;
  const last = Math.min(page.offset + page.limit, page.total);
  for (const box of document.querySelectorAll(`[data-pager='${name}']`)) {
    const previous = el("button", { type: "button", "data-page": "previous", disabled: page.offset === 0 }, "Previous");
    const next = el("button", { type: "button", "data-page": "next", disabled: last >= page.total }, "Next");
    previous.addEventListener("click", () => { offsets[name] = Math.max(0, page.offset - page.limit); load(); });
    next.addEventListener("click", () => { offsets[name] = page.offset + page.limit; load(); });
    box.replaceChildren(previous, el("span", { class: "muted", "data-field": "range" }, `${first}–${last} of ${page.total}`), next);
    box.hidden = page.total <= page.limit;
  }
}

function drawTenants(tenants, counts) {
  const investigate = tenants.filter((t) => t.status === "needs_investigation");
  const others = tenants.filter((t) => t.status !== "needs_investigation");
  document.querySelector("#investigation tbody").replaceChildren(
    ...investigate.map((t) =>
      el("tr", { "data-tenant": t.tenant_id, "data-status": t.status },
        el("td", {}, el("strong", {}, t.tenant_id), el("div", { class: "muted", "data-field": "status" }, t.status.replaceAll("_", " "))),
        el("td", {}, errorBadge(t.last_error), t.last_error ? el("div", { class: "muted" }, `${t.last_error.classification.replaceAll("_", " ")} · ${t.last_error.provider}`) : null),
        el("td", { class: "message", "data-field": "message" }, t.last_error ? t.last_error.message : ""),
        el("td", {},
          t.last_error ? taskLink(t.last_error.task_instance, "failed task instance") : null,
          el("div", { class: "muted mono", "data-field": "execution" }, t.last_error ? `${t.last_error.execution_id} (try ${t.last_error.attempt})` : t.execution_id || "")),
        el("td", {}, releaseCell(t))
      )
    )
  );
  document.getElementById("investigation-empty").hidden = counts.needs_investigation > 0;
  document.querySelector("#others tbody").replaceChildren(
    ...others.map((t) =>
      el("tr", { "data-tenant": t.tenant_id, "data-status": t.status },
        el("td", {}, el("strong", {}, t.tenant_id)),
        el("td", { "data-field": "status" }, t.status.replaceAll("_", " "), t.note ? el("div", { class: "muted" }, t.note) : null),
        el("td", {}, errorBadge(t.last_error)),
        el("td", { class: "message" }, t.last_error ? t.last_error.message : ""),
        el("td", { class: "mono muted" }, t.execution_id || "")
      )
    )
  );
}

function resourceRow(r) {
  const resource = r.console_url
    ? el("a", { href: r.console_url, target: "_blank", rel: "noopener" }, r.resource_id)
    : el("span", { class: "mono" }, r.locator.namespace ? `${r.locator.namespace}/${r.resource_id}` : r.resource_id || "(never launched)");
  return el("tr", { "data-resource": r.resource_id || "" },
    el("td", {}, r.tenant_id),
    el("td", {}, r.provider),
    el("td", {}, `#${r.unit_index} gen ${r.generation}`),
    el("td", { class: "mono" }, resource, el("div", { class: "muted" }, Object.entries(r.locator).map(([k, v]) => `${k}=${v}`).join(" "))),
    el("td", {}, r.error ? el("span", { class: "badge requires_manual_intervention" }, r.error.code) : "", r.error ? el("div", { class: "message muted" }, r.error.message) : null),
    el("td", {}, when(r.since)),
    el("td", {}, taskLink(r.task_instance))
  );
}

function drawCleanup(rows, page) {
  document.querySelector("#cleanup tbody").replaceChildren(...rows.map(resourceRow));
  document.getElementById("cleanup-empty").hidden = page.total > 0;
}

function drawChart(errors) {
  const chart = document.getElementById("chart");
  const legend = document.getElementById("legend");
  const n = errors.buckets.length;
  const totals = errors.buckets.map((_, i) => errors.series.reduce((sum, s) => sum + s.counts[i], 0));
  const max = Math.max(1, ...totals);
  const W = 900, H = 220, left = 40, bottom = 30, top = 10;
  const bar = (W - left - 10) / n;
  const y = (v) => H - bottom - (v / max) * (H - bottom - top);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "errors per time bucket, stacked by provider and code");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  for (const tick of [0, Math.ceil(max / 2), max]) {
    add("line", { x1: left, x2: W - 10, y1: y(tick), y2: y(tick), class: "grid" });
    add("text", { x: left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" }, tick);
  }
  errors.buckets.forEach((start, i) => {
    let base = 0;
    errors.series.forEach((s, k) => {
      const v = s.counts[i];
      if (!v) return;
      const rect = add("rect", { x: left + i * bar + 1, width: Math.max(1, bar - 2), y: y(base + v), height: y(base) - y(base + v), fill: COLORS[k % COLORS.length], "data-series": `${s.provider}:${s.code}` });
      const title = document.createElementNS(ns, "title");
      title.textContent = `${s.provider} ${s.code}: ${v} from ${when(start)}`;
      rect.append(title);
      base += v;
    });
    if (i % Math.ceil(n / 6) === 0) {
      const label = new Date(start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      add("text", { x: left + i * bar, y: H - 10, class: "axis" }, label);
    }
  });
  chart.replaceChildren(svg);
  legend.replaceChildren(
    ...(errors.series.length
      ? errors.series.map((s, k) =>
          el("li", { "data-series": `${s.provider}:${s.code}` },
            el("span", { class: "swatch", style: `background:${COLORS[k % COLORS.length]}` }),
            `${s.provider} · ${s.code} (${s.classification.replaceAll("_", " ")}): ${s.total}`))
      : [el("li", { class: "muted" }, "No compute errors in this window.")])
  );
}

async function lookup() {
  const resource = params.get("resource");
  if (!resource) return;
  const section = document.getElementById("lookup");
  const namespace = params.get("namespace");
  document.getElementById("lookup-name").textContent = namespace ? `${namespace}/${resource}` : resource;
  section.hidden = false;
  const found = await api(`api/resources?resource_id=${encodeURIComponent(resource)}`);
  document.getElementById("lookup-rows").replaceChildren(
    ...(found.entries.length
      ? found.entries.map((r) =>
          el("tr", {}, el("td", {}, r.tenant_id), el("td", {}, r.provider), el("td", {}, `#${r.unit_index} gen ${r.generation}`),
            el("td", {}, r.status), el("td", {}, r.error ? r.error.code : ""), el("td", {}, when(r.since)), el("td", {}, taskLink(r.task_instance))))
      : [el("tr", {}, el("td", { colSpan: 7, class: "muted" }, "The ledger has no such resource."))])
  );
}

async function load() {
  const hours = document.getElementById("window").value;
  try {
    const query = new URLSearchParams({ hours, tenants_offset: offsets.tenants, cleanup_offset: offsets.cleanup });
    const summary = await api(`api/health?${query}`);
    drawCounts(summary.counts);
    drawTenants(summary.tenants, summary.counts);
    drawPager("tenants", summary.tenants_page);
    drawCleanup(summary.pending_cleanup, summary.pending_cleanup_page);
    drawPager("cleanup", summary.pending_cleanup_page);
    drawChart(summary.errors);
    document.getElementById("generated").textContent = `as of ${when(summary.generated_at)} · ${summary.user}`;
    document.body.dataset.loaded = "true";
  } catch (exc) {
    say(`Could not load the compute health: ${exc.message}`, "error");
  }
}

document.getElementById("refresh").addEventListener("click", load);
document.getElementById("window").addEventListener("change", load);
load();
lookup().catch((exc) => say(`Could not look the resource up: ${exc.message}`, "error"));
