// keel status page. Reads GET /v1/cluster, /v1/sys/lifecycle,
// /v1/sys/seal-status, /v1/sys/census and /v1/sys/events every few seconds
// with the admin token the user entered. The token lives in this tab's
// sessionStorage only and is sent only in the Authorization header, never
// in a URL. Everything from the API is written with textContent.
"use strict";

const TOKEN_KEY = "keel-token";
const REFRESH_MS = 2000;
let timer = null;

const $ = (id) => document.getElementById(id);

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function set(id, value, cls) {
  const el = $(id);
  el.textContent = value === null || value === undefined ? "-" : String(value);
  el.className = cls || "";
}

function cell(row, value, cls) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "-" : String(value);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function ms(value) {
  if (value === null || value === undefined) return "-";
  if (Math.abs(value) < 1000) return value + " ms";
  return (value / 1000).toFixed(1) + " s";
}

function signedMs(value) {
  if (value === null || value === undefined) return "-";
  return (value > 0 ? "+" : "") + value + " ms";
}

function byState(counts) {
  return Object.entries(counts).map(([k, v]) => k + " " + v).join(", ");
}

class Unauthorized extends Error {}

async function api(path) {
  const res = await fetch(path, {
    headers: { Authorization: "Bearer " + token(), Accept: "application/json" },
    cache: "no-store",
  });
  if (res.status === 401) throw new Unauthorized("the token was refused");
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const msg = body && body.error ? body.error.code + ": " + body.error.message : "HTTP " + res.status;
    throw new Error(path + ": " + msg);
  }
  return body;
}

function renderCluster(c) {
  set("cluster-id", c.cluster_id);
  set("leader", c.leader === null ? "none" : "node " + c.leader, c.leader === null ? "bad" : "good");
  set("term", c.term);
  set("commit-index", c.commit_index);
  set("applied-index", c.applied_index);
  set("node-id", "node " + c.node_id);
  $("node-label").textContent = "answering: node " + c.node_id;
  const tbody = $("members").querySelector("tbody");
  tbody.replaceChildren();
  for (const m of c.members) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(m.id);
    tr.dataset.state = m.state;
    if (m.state === "leader") tr.className = "leader";
    cell(tr, m.id);
    cell(tr, m.role);
    const stale = m.last_contact_ms !== null && m.last_contact_ms > 3000;
    cell(tr, m.state, m.state === "unreachable" ? "bad" : m.state === "leader" ? "good" : "");
    cell(tr, m.lag);
    cell(tr, signedMs(m.clock_offset_ms), m.clock_offset_ms !== null && Math.abs(m.clock_offset_ms) > 250 ? "warn" : "");
    cell(tr, ms(m.last_contact_ms), stale ? "bad" : "");
    cell(tr, m.version);
    cell(tr, m.api_addr);
    tbody.appendChild(tr);
  }
}

function renderLifecycle(l) {
  set("phase", l.phase, l.phase === "ready" ? "good" : "warn");
  const tbody = $("components").querySelector("tbody");
  tbody.replaceChildren();
  for (const c of l.components) {
    const tr = document.createElement("tr");
    cell(tr, c.name);
    cell(tr, c.state, c.state === "failed" ? "bad" : c.state === "running" ? "good" : "");
    cell(tr, c.since);
    tbody.appendChild(tr);
  }
}

function renderCensus(c) {
  set("leases", byState(c.leases));
  set("accounts", byState(c.accounts));
  set("certificates", byState(c.certificates));
  const debt = c.expiry_debt;
  set("expiry-debt", debt.leases === 0 ? "none" : debt.leases + " lease(s), oldest due " + ms(debt.oldest_overdue_ms) + " ago",
      debt.leases === 0 ? "good" : "warn");
  if (c.crl.ca_initialized) {
    set("crl-number", c.crl.number);
    set("crl-this-update", c.crl.this_update);
    set("crl-next-update", c.crl.next_update);
    set("crl-entries", c.crl.entries);
  } else {
    set("crl-number", "no CA yet");
  }
}

function renderEvents(e) {
  const tbody = $("events").querySelector("tbody");
  tbody.replaceChildren();
  for (const ev of e.events.slice().reverse()) {
    const tr = document.createElement("tr");
    tr.dataset.kind = ev.kind;
    cell(tr, ev.at);
    cell(tr, ev.kind);
    cell(tr, ev.message);
    tbody.appendChild(tr);
  }
}

async function refresh() {
  const parts = [
    ["/v1/cluster", renderCluster],
    ["/v1/sys/lifecycle", renderLifecycle],
    ["/v1/sys/census", renderCensus],
    ["/v1/sys/events", renderEvents],
  ];
  const results = await Promise.allSettled(parts.map(([path]) => api(path)));
  const problems = [];
  let refused = false;
  results.forEach((r, i) => {
    if (r.status === "fulfilled") parts[i][1](r.value);
    else if (r.reason instanceof Unauthorized) refused = true;
    else problems.push(r.reason.message);
  });
  try {
    const seal = await api("/v1/sys/seal-status");
    set("seal", seal.sealed ? "sealed" : "unsealed", seal.sealed ? "bad" : "good");
  } catch (e) {
    problems.push(e.message);
  }
  if (refused) {
    signOut("The token was refused; enter another.");
    return;
  }
  const banner = $("error");
  banner.hidden = problems.length === 0;
  banner.textContent = problems.join(" | ");
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  $("updated").dataset.at = String(Date.now());
  // Signed out while this round ran: no next round.
  if (token()) timer = setTimeout(refresh, REFRESH_MS);
}

function showStatus() {
  $("login").hidden = true;
  $("status").hidden = false;
  $("sign-out").hidden = false;
  if (timer === null) {
    timer = 0;
    refresh();
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer !== null) clearTimeout(timer);
  timer = null;
  $("status").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("updated").textContent = "not loaded";
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("token").value.trim();
    if (value === "") return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    showStatus();
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  if (token()) showStatus();
  else signOut("");
});
