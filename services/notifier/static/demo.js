// opex-bridge demo page: one user's orders, positions and balances, live.
// Load-then-stream without a gap: subscribe first (the answer names the stream's seq),
// then read the REST snapshots, and keep for every order / position / balance the item
// with the highest seq, whichever way it came.
"use strict";

(function () {
  const CHANNELS = ["orders", "positions", "account", "ticker:BTC_USDT", "ticker:ETH_USDT"];
  const TERMINAL_CLOSES = new Set([4400, 4401, 4403, 4413]);
  const state = {
    token: null, user: null, epoch: null, seq: 0, socket: null, retries: 0,
    orders: new Map(), positions: new Map(), balances: new Map(), tickers: new Map(),
  };
  window.demoState = state; // for the curious (and the browser test)

  const $ = (selector) => document.querySelector(selector);

  function setStatus(text, kind) {
    const el = $("#status");
    el.textContent = text;
    el.dataset.state = kind;
  }

  function log(text) {
    const item = document.createElement("li");
    item.textContent = new Date().toLocaleTimeString() + "  " + text;
    const list = $("#log");
    list.prepend(item);
    while (list.children.length > 60) list.lastChild.remove();
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text == null || text === "" ? "–" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  // keep an item only if it is newer (by seq) than what is shown
  function upsert(map, key, item, seq) {
    const current = map.get(key);
    if (current && current.seq != null && seq != null && current.seq >= seq) return false;
    map.set(key, Object.assign({}, item, { seq: seq }));
    return true;
  }

  function renderOrders(fresh) {
    const body = $("#orders tbody");
    body.replaceChildren();
    const items = Array.from(state.orders.values())
      .sort((a, b) => String(b.updated_at || "").localeCompare(String(a.updated_at || "")) || b.seq - a.seq)
      .slice(0, 60);
    for (const o of items) {
      const tr = document.createElement("tr");
      tr.dataset.id = o.id;
      tr.dataset.status = o.status;
      if (o.id === fresh) tr.className = "fresh";
      cell(tr, (o.updated_at || "").slice(11, 19));
      cell(tr, o.id);
      cell(tr, o.side);
      cell(tr, o.type);
      cell(tr, o.quantity);
      cell(tr, o.price);
      cell(tr, Number(o.filled_quantity) ? o.filled_quantity + " @ " + o.filled_price : "");
      const reason = o.reason_code ? " (" + o.reason_code + ")" : "";
      cell(tr, o.status + reason, "status status-" + o.status);
      body.appendChild(tr);
    }
  }

  function renderPositions(fresh) {
    const body = $("#positions tbody");
    body.replaceChildren();
    for (const p of Array.from(state.positions.values()).sort((a, b) => a.symbol.localeCompare(b.symbol))) {
      const tr = document.createElement("tr");
      tr.dataset.symbol = p.symbol;
      tr.dataset.quantity = p.quantity;
      if (p.symbol === fresh) tr.className = "fresh";
      const q = Number(p.quantity);
      cell(tr, p.symbol);
      cell(tr, p.quantity, q > 0 ? "long" : q < 0 ? "short" : "");
      cell(tr, p.avg_entry_price);
      cell(tr, p.mark_price);
      cell(tr, p.unrealized_pnl);
      cell(tr, p.realized_pnl);
      body.appendChild(tr);
    }
  }

  function renderBalances() {
    const body = $("#balances tbody");
    body.replaceChildren();
    for (const b of Array.from(state.balances.values()).sort((a, b) => a.asset.localeCompare(b.asset))) {
      if (!Number(b.free) && !Number(b.locked)) continue;
      const tr = document.createElement("tr");
      tr.dataset.asset = b.asset;
      cell(tr, b.asset);
      cell(tr, b.free);
      cell(tr, b.locked);
      body.appendChild(tr);
    }
  }

  function renderMarket() {
    const parts = Array.from(state.tickers.values()).map(
      (t) => t.symbol + " " + (t.last_price || "–") + "  (bid " + (t.bid_price || "–") + " / ask " + (t.ask_price || "–") + ")"
    );
    $("#market").textContent = parts.join("   ·   ");
  }

  function takeSeq(seq) {
    if (typeof seq === "number" && seq > state.seq) state.seq = seq;
    $("#seq").textContent = state.epoch ? "epoch " + state.epoch + " · seq " + state.seq : "";
  }

  function onOrder(data, seq) {
    if (upsert(state.orders, data.id, data, seq)) renderOrders(data.id);
  }

  function onPosition(data, seq) {
    if (Number(data.quantity) === 0) {
      const current = state.positions.get(data.symbol);
      if (!current || current.seq == null || seq == null || current.seq < seq) {
        state.positions.delete(data.symbol);
        renderPositions();
      }
      return;
    }
    if (upsert(state.positions, data.symbol, data, seq)) renderPositions(data.symbol);
  }

  function onBalances(balances, seq) {
    let changed = false;
    for (const b of balances) changed = upsert(state.balances, b.asset, b, b.seq != null ? b.seq : seq) || changed;
    if (changed) renderBalances();
  }

  async function rest(path) {
    const answer = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
    if (!answer.ok) throw new Error(path + ": HTTP " + answer.status);
    return answer.json();
  }

  async function loadSnapshots() {
    try {
      const [orders, positions, account] = await Promise.all([
        rest("/api/trading/orders?limit=100"),
        rest("/api/trading/positions"),
        rest("/api/trading/account"),
      ]);
      for (const item of orders.items) onOrder(item, item.seq);
      for (const item of positions.items) onPosition(item, item.seq);
      onBalances(account.balances || [], account.seq);
      takeSeq(Math.max(orders.seq, positions.seq, account.seq));
      log("snapshots loaded: " + orders.items.length + " orders, " + positions.items.length + " positions");
    } catch (error) {
      log("snapshots failed: " + error.message);
    }
  }

  function describe(frame) {
    const d = frame.data || {};
    switch (frame.type) {
      case "order_update":
      case "order_rejected":
        return d.id + " " + d.side + " " + d.quantity + " " + d.symbol + " " + d.type + " → " + d.status +
          (d.reason_code ? " (" + d.reason_code + ")" : "");
      case "position_update":
        return "position " + d.symbol + " " + d.quantity + " (uPnL " + d.unrealized_pnl + ")";
      case "account_update":
        return d.kind === "balances"
          ? "balances " + (d.balances || []).filter((b) => Number(b.free) || Number(b.locked)).map((b) => b.asset + " " + b.free).join(", ")
          : "trading state " + d.state;
      case "cancel_rejected":
        return "cancel refused " + (d.client_order_id || d.order_id) + " (" + d.reason_code + ")";
      default:
        return frame.type;
    }
  }

  function onFrame(frame) {
    const d = frame.data || {};
    switch (frame.type) {
      case "authenticated":
        state.user = d.user_id;
        $("#who").textContent = "user " + d.user_id;
        send(Object.assign(
          { type: "subscribe", channels: CHANNELS },
          state.epoch && state.seq ? { since: state.seq, epoch: state.epoch } : {}
        ));
        return;
      case "subscribed":
        if (d.epoch) state.epoch = d.epoch;
        takeSeq(d.seq);
        setStatus("live", "live");
        state.retries = 0;
        log("subscribed (" + (d.resume || "live") + ")");
        if (d.resume !== "recovered") loadSnapshots();
        return;
      case "ticker":
        state.tickers.set(d.symbol, d);
        renderMarket();
        return;
      case "order_update":
      case "order_rejected":
        onOrder(d, frame.seq);
        break;
      case "position_update":
        onPosition(d, frame.seq);
        break;
      case "account_update":
        if (d.kind === "balances") onBalances(d.balances || [], frame.seq);
        break;
      case "pong":
      case "token_expiring":
      case "unsubscribed":
        return;
      case "error":
        log("error " + d.code + ": " + d.message);
        return;
    }
    takeSeq(frame.seq);
    log(describe(frame));
  }

  function send(frame) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(frame));
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(scheme + "//" + location.host + "/ws");
    state.socket = socket;
    setStatus("connecting…", "connecting");
    socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token: state.token }));
    socket.onmessage = (event) => {
      try {
        onFrame(JSON.parse(event.data));
      } catch (error) {
        log("bad frame: " + error.message);
      }
    };
    socket.onclose = (event) => {
      if (TERMINAL_CLOSES.has(event.code) || event.code === 4402) {
        setStatus("closed: " + (event.reason || event.code) + " (get a new token)", "error");
        $("#token-form").hidden = false;
        return;
      }
      const wait = Math.min(10000, 500 * 2 ** state.retries++);
      setStatus("disconnected (" + event.code + "): reconnecting in " + Math.round(wait / 1000) + " s", "closed");
      setTimeout(connect, wait);
    };
  }

  function start(token) {
    state.token = token.trim();
    try {
      sessionStorage.setItem("opexbridge-demo-token", state.token);
    } catch (_) { /* private mode */ }
    $("#token-form").hidden = true;
    connect();
  }

  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  let saved = null;
  try {
    saved = sessionStorage.getItem("opexbridge-demo-token");
  } catch (_) { /* private mode */ }
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#token-input").value;
    if (value.trim()) start(value);
  });
  if (fromHash || saved) {
    if (fromHash) history.replaceState(null, "", location.pathname); // keep it out of the address bar
    start(fromHash || saved);
  } else {
    $("#token-form").hidden = false;
  }
})();
