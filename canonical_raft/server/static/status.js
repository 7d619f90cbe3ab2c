// The status page: polls ./members and ./status, fills the table, draws the chart.
"use strict";

const POLL_MS = 2000;
const COLORS = { ops: "#245ab8", commits: "#0a7d32", latency: "#b86e00", grid: "#e3e6eb",
                 text: "#555" };

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "\u2013" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function contact(status) {
  if (!status) return null;
  if (status.state === "leader") return "leader";
  return status.last_contact === null ? null : status.last_contact.toFixed(2) + " s ago";
}

function renderMembers(doc) {
  const body = document.querySelector("#members tbody");
  body.replaceChildren();
  for (const m of doc.members) {
    const s = m.status;
    const row = document.createElement("tr");
    row.dataset.id = m.id;
    if (m.id === doc.leader) row.className = "leader";
    cell(row, m.id);
    cell(row, m.address, "text");
    cell(row, m.role, "text");
    const state = s ? s.state : (m.status_error || "unknown");
    cell(row, state, "text " + (s ? "state-" + s.state : "down"));
    cell(row, s && s.term);
    cell(row, s && s.commit_index);
    cell(row, s && s.last_applied);
    cell(row, s && s.last_index);
    cell(row, s && s.snapshot_index);
    cell(row, contact(s));
    cell(row, m.http, "text");
    body.appendChild(row);
  }
}

function renderSummary(status, doc) {
  const leader = status.leader ? "leader " + status.leader.id + " (" + status.leader.address + ")"
                               : "no leader";
  const up = doc.members.filter(m => m.status).length;
  document.getElementById("summary").textContent =
    "node " + status.id + " \u00b7 " + status.state + " \u00b7 term " + status.term + " \u00b7 " +
    leader + " \u00b7 " + up + "/" + doc.members.length + " members answering";
}

function drawChart(history) {
  const canvas = document.getElementById("chart");
  const g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 50, R = 60, T = 12, B = 28;
  const n = history.time.length;
  g.clearRect(0, 0, W, H);
  g.font = "12px system-ui, sans-serif";
  const rate = Math.max(1, ...history.requests, ...history.commits);
  const lat = Math.max(1, ...history.latency_ms_mean);
  const span = 300;                      // seconds across the chart
  const x = i => L + (W - L - R) * (span - (n - 1 - i)) / span;
  const yRate = v => H - B - (H - T - B) * v / rate;
  const yLat = v => H - B - (H - T - B) * v / lat;
  g.strokeStyle = COLORS.grid; g.fillStyle = COLORS.text; g.lineWidth = 1;
  for (let k = 0; k <= 4; k++) {
    const y = T + (H - T - B) * k / 4;
    g.beginPath(); g.moveTo(L, y); g.lineTo(W - R, y); g.stroke();
    g.textAlign = "right"; g.fillText(Math.round(rate * (4 - k) / 4), L - 6, y + 4);
    g.textAlign = "left"; g.fillText((lat * (4 - k) / 4).toFixed(1), W - R + 6, y + 4);
  }
  g.textAlign = "center";
  for (let m = 0; m <= 5; m++) {
    g.fillText(m === 0 ? "now" : "-" + m + " min", L + (W - L - R) * (1 - m * 60 / span), H - 8);
  }
  const line = (values, y, color) => {
    if (n === 0) return;
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    values.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
    g.stroke();
  };
  line(history.requests, yRate, COLORS.ops);
  line(history.commits, yRate, COLORS.commits);
  line(history.latency_ms_mean, yLat, COLORS.latency);
  canvas.dataset.samples = n;
}

async function getJSON(path) {
  const resp = await fetch(path, { cache: "no-store" });
  if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
  return resp.json();
}

async function refresh() {
  try {
    const [members, status] = await Promise.all([getJSON("members"), getJSON("status?history=1")]);
    renderMembers(members);
    renderSummary(status, members);
    drawChart(status.history);
    document.getElementById("error").textContent = "";
    document.body.dataset.loaded = "1";
  } catch (err) {
    document.getElementById("error").textContent = "cannot reach the server: " + err.message;
  }
}

refresh();
setInterval(refresh, POLL_MS);
