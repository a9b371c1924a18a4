// virtnet web console: reads the API through /api/v1/..., follows /events (Server-Sent
// Events) and redraws on every event, without reloading the page. No external code.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLUMNS = [
  { x: 10, title: "host NICs" },
  { x: 250, title: "bridges" },
  { x: 510, title: "ports" },
  { x: 730, title: "guests" },
];
const NODE_W = 210;
const NODE_H = 58;
const ROW_H = 72;

let refreshing = null;
let refreshAgain = false;
// How many times the data was drawn (the test reads it; the page itself never reloads).
window.virtnetRefreshes = 0;

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function status(message, error) {
  const s = document.getElementById("status");
  s.textContent = message;
  s.className = error ? "error" : "";
}

async function api(method, path, body, contentType) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.body = body;
    init.headers["Content-Type"] = contentType || "application/json";
  }
  const r = await fetch("/api" + path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!r.ok) {
    const msg = data && data.message ? data.message : r.status + " " + r.statusText;
    throw new Error(msg);
  }
  return data;
}

const enc = encodeURIComponent;

function ipText(ip) {
  const prefix = ip.prefix !== undefined ? ip.prefix : (ip.netmask ? maskBits(ip.netmask) : "");
  return prefix === "" ? ip.address : ip.address + "/" + prefix;
}

function maskBits(mask) {
  return mask.split(".").reduce((n, o) => n + ((+o).toString(2).match(/1/g) || []).length, 0);
}

// Everything the page shows, in one go.
async function load() {
  const [networks, ports, forwards, hostBridges] = await Promise.all([
    api("GET", "/v1/networks"),
    api("GET", "/v1/ports?counters=false"),
    api("GET", "/v1/forwards"),
    api("GET", "/v1/host-bridges").catch(() => []),
  ]);
  const details = await Promise.all(networks.map((n) =>
    api("GET", "/v1/networks/" + enc(n.name)).catch(() => null)));
  const leases = await Promise.all(networks.map((n) => n.active
    ? api("GET", "/v1/networks/" + enc(n.name) + "/leases").catch(() => [])
    : Promise.resolve([])));
  return {
    networks: networks.map((n, i) => ({
      summary: n,
      definition: details[i] ? details[i].definition : null,
      leases: leases[i] || [],
      ports: ports.filter((p) => (p.source && p.source.name === n.name)
        || (n.bridge && p.bridge === n.bridge)),
    })),
    forwards,
    hostBridges,
  };
}

// The host NIC a network reaches the outside through, as far as the console can tell.
function uplink(net, hostBridges) {
  const def = net.definition;
  const mode = net.summary.forward_mode;
  if (def && def.forward && def.forward.interfaces && def.forward.interfaces.length) {
    return { name: def.forward.interfaces.join(", "), sub: "forward " + mode };
  }
  const hb = hostBridges.find((b) => b.bridge === net.summary.bridge);
  if (hb) return { name: hb.iface, sub: "enslaved to " + hb.bridge };
  if (mode === "nat" || mode === "route" || mode === "open") {
    return { name: "host routing", sub: mode + " via the default route" };
  }
  if (mode === "bridge") return { name: "host bridge", sub: "bridge mode" };
  return { name: "no uplink", sub: "isolated" };
}

function node(g, col, y, cls, lines, data) {
  const n = svg("g", Object.assign({ class: "node " + cls, transform: `translate(${COLUMNS[col].x},${y})` }, data || {}));
  n.appendChild(svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }));
  lines.forEach((line, i) => {
    n.appendChild(svg("text", { x: 10, y: 18 + i * 15, class: i === 0 ? "title" : "sub" }, line));
  });
  g.appendChild(n);
  return { x: COLUMNS[col].x, y };
}

function edge(g, from, to) {
  const x1 = from.x + NODE_W, y1 = from.y + NODE_H / 2, x2 = to.x, y2 = to.y + NODE_H / 2;
  const mx = (x1 + x2) / 2;
  g.appendChild(svg("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
}

function drawTopology(data) {
  const root = svg("svg", { id: "topology-svg", role: "img", "aria-label": "network topology" });
  const edges = svg("g", {});
  const nodes = svg("g", {});
  root.appendChild(edges);
  root.appendChild(nodes);
  COLUMNS.forEach((c) => root.appendChild(svg("text", { class: "column", x: c.x, y: 14 }, c.title)));
  let y = 26;
  for (const net of data.networks) {
    const s = net.summary;
    const state = s.active ? "active" : "inactive";
    // A guest per port, and one per lease no port explains.
    const guests = net.ports.map((p) => ({ port: p, mac: p.mac, domain: p.domain }));
    for (const l of net.leases) {
      if (!guests.some((g) => g.mac === l.mac)) guests.push({ port: null, mac: l.mac, domain: l.hostname || "guest" });
    }
    const rows = Math.max(1, guests.length);
    const mid = y + ((rows - 1) * ROW_H) / 2;
    const up = uplink(net, data.hostBridges);
    const nic = node(nodes, 0, mid, "nic " + state, [up.name, up.sub], { "data-network": s.name });
    const ips = net.definition && net.definition.ips ? net.definition.ips.map(ipText).join(" ") : "";
    const br = node(nodes, 1, mid, "bridge " + state,
      [(s.bridge || "(no bridge)") + " — " + s.name, state + " · " + s.forward_mode, ips],
      { "data-network": s.name, "data-bridge": s.bridge || "" });
    edge(edges, nic, br);
    guests.forEach((g, i) => {
      const gy = y + i * ROW_H;
      const addrs = net.leases.filter((l) => l.mac === g.mac).map((l) => l.ipAddress);
      let left = br;
      if (g.port) {
        left = node(nodes, 2, gy, "port " + state, [g.port.name, "tap " + g.port.tap_mac,
          g.port.link_up ? "link up" : "link down"], { "data-port": g.port.name });
        edge(edges, br, left);
      }
      const guest = node(nodes, 3, gy, "guest " + state,
        [g.domain, g.mac, addrs.length ? addrs.join(" ") : "no address"],
        { "data-mac": g.mac, "data-addresses": addrs.join(" ") });
      edge(edges, left, guest);
    });
    y += rows * ROW_H + 12;
  }
  if (!data.networks.length) {
    root.appendChild(svg("text", { x: 10, y: 44, class: "column" }, "no networks defined"));
    y += ROW_H;
  }
  const width = COLUMNS[3].x + NODE_W + 10;
  root.setAttribute("viewBox", `0 0 ${width} ${y}`);
  root.setAttribute("width", width);
  root.setAttribute("height", y);
  const holder = document.getElementById("topology");
  holder.replaceChildren(root);
}

function fillTable(id, rows, columns) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  if (!rows.length) {
    const tr = el("tr");
    tr.appendChild(el("td", { colspan: String(columns), class: "empty" }, "none"));
    body.appendChild(tr);
    return;
  }
  rows.forEach((r) => body.appendChild(r));
}

function row(cells, attrs) {
  const tr = el("tr", attrs);
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined || c === null ? "" : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function actionButton(action, name) {
  const b = el("button", { type: "button", "data-action": action, "data-network": name },
    action === "start" ? "Start" : "Stop");
  b.addEventListener("click", () => change(action, name));
  return b;
}

function drawTables(data) {
  fillTable("networks", data.networks.map((n) => {
    const s = n.summary;
    const state = el("span", { class: s.active ? "state-active" : "state-inactive" }, s.active ? "active" : "inactive");
    const ips = n.definition && n.definition.ips ? n.definition.ips.map(ipText).join(" ") : "";
    return row([s.name, state, s.autostart ? "yes" : "no", s.persistent ? "yes" : "no",
      s.forward_mode, s.bridge || "", ips, actionButton(s.active ? "stop" : "start", s.name)],
    { "data-network": s.name, "data-state": s.active ? "active" : "inactive" });
  }), 8);
  const leases = [];
  for (const n of data.networks) {
    for (const l of n.leases) {
      const expiry = l.expiryTime;
      leases.push(row([n.summary.name, l.mac, l.ipAddress + "/" + l.prefix, l.hostname || "",
        expiry ? new Date(expiry * 1000).toLocaleString() : ""], { "data-mac": l.mac }));
    }
  }
  fillTable("leases", leases, 5);
  fillTable("forwards", data.forwards.map((f) => {
    const ports = f.ports.start === f.ports.end ? f.ports.start : f.ports.start + "-" + f.ports.end;
    const to = typeof f.to === "object" ? Object.values(f.to).join(" ") : f.to;
    return row([f.network, f.proto, f.listen || "*", ports, to + (f.to_port ? ":" + f.to_port : ""),
      (f.guest_addresses || []).join(" "), f.active ? "yes" : "no"]);
  }), 7);
}

// Loads and draws everything; a refresh asked for while one runs is run once after it.
async function refresh() {
  if (refreshing) { refreshAgain = true; return refreshing; }
  refreshing = (async () => {
    try {
      const data = await load();
      drawTopology(data);
      drawTables(data);
      window.virtnetRefreshes += 1;
      document.body.dataset.refreshes = String(window.virtnetRefreshes);
    } catch (e) {
      status("cannot load: " + e.message, true);
    }
  })();
  await refreshing;
  refreshing = null;
  if (refreshAgain) { refreshAgain = false; return refresh(); }
}

async function change(action, name) {
  try {
    if (action === "start") {
      await api("POST", "/v1/networks/" + enc(name) + "/start");
    } else {
      await api("POST", "/v1/destroy", JSON.stringify({ networks: [name] }));
    }
    status(`network ${name}: ${action === "start" ? "started" : "stopped"}`);
  } catch (e) {
    status(`${action} ${name}: ${e.message}`, true);
  }
  refresh();
}

async function define(ev) {
  ev.preventDefault();
  const xml = document.getElementById("define-xml").value;
  try {
    const r = await api("POST", "/v1/networks", xml, "application/xml");
    status(`network ${r.network.name} defined`);
    (r.warnings || []).forEach((w) => logEvent("warning: " + w));
  } catch (e) {
    status("define: " + e.message, true);
  }
  refresh();
}

function logEvent(text) {
  const list = document.getElementById("events");
  const li = el("li", {}, new Date().toLocaleTimeString() + "  " + text);
  list.insertBefore(li, list.firstChild);
  while (list.children.length > 100) list.removeChild(list.lastChild);
}

function follow() {
  const source = new EventSource("/events");
  const badge = document.getElementById("feed-state");
  source.onopen = () => { badge.textContent = "live"; badge.className = "badge live"; refresh(); };
  source.onerror = () => { badge.textContent = "reconnecting…"; badge.className = "badge"; };
  source.addEventListener("lease", (m) => {
    const e = JSON.parse(m.data);
    const l = e.lease || {};
    logEvent(`lease ${e.kind} ${e.network} ${l.mac} ${l.ipAddress || ""} ${l.hostname || ""}`);
    refresh();
  });
  source.addEventListener("lifecycle", (m) => {
    const e = JSON.parse(m.data);
    logEvent(`network ${e.network} ${e.kind}`);
    refresh();
  });
  source.addEventListener("lost", (m) => { logEvent(m.data); refresh(); });
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("define-form").addEventListener("submit", define);
  refresh();
  follow();
});
