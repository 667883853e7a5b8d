// The chat page: one WebSocket to /ws, JSON messages (see examples/chat/protocol.py).
//
// Everything a user sent is shown with textContent, never parsed as HTML:
// a message like "<img src=x onerror=...>" stays text.
"use strict";

(() => {
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 8000;
  const FIRST_ROOM = "lobby";

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const state = {
    ws: null,
    attempt: 0, // reconnection attempts since the last successful open
    retryTimer: null,
    countdownTimer: null,
    wantedNick: null, // what the user typed; sent again after every reconnect
    nick: null, // what the server accepted on this connection
    resumeTries: 0, // hellos refused because our previous connection still holds the name
    rooms: new Map(), // name -> {logEl, members: Set, seen: Set, unread, lost}
    active: null,
    focusOnJoin: null,
  };

  // -- connection --------------------------------------------------------------

  function setStatus(name, text) {
    const status = $("status");
    status.dataset.state = name;
    status.textContent = text;
  }

  function connect() {
    clearTimeout(state.retryTimer);
    clearInterval(state.countdownTimer);
    setStatus("connecting", "connecting…");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    state.ws = ws;
    ws.addEventListener("open", () => {
      state.attempt = 0;
      setStatus("connected", "connected");
      if (state.wantedNick) send({ type: "hello", nick: state.wantedNick });
    });
    ws.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      const handler = handlers[msg.type];
      if (handler) handler(msg);
    });
    ws.addEventListener("close", (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.nick = null;
      for (const room of state.rooms.values()) {
        if (!room.lost) notice(room, "Connection lost; reconnecting…");
        room.lost = true;
      }
      scheduleReconnect(event.code);
    });
  }

  // Exponential backoff with jitter, so many pages do not come back at once.
  function scheduleReconnect(code) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    state.attempt += 1;
    const due = Date.now() + delay;
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      setStatus("disconnected", `disconnected (${code}); reconnecting in ${seconds} s`);
    };
    tick();
    state.countdownTimer = setInterval(tick, 250);
    state.retryTimer = setTimeout(connect, delay);
  }

  function send(obj) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(obj));
    return true;
  }

  // -- server messages ------------------------------------------------------------

  const handlers = {
    welcome(msg) {
      const limits = msg.limits || {};
      if (limits.text) $("text").maxLength = limits.text;
      if (limits.nick) $("nick").maxLength = limits.nick;
      if (limits.room) $("room-input").maxLength = limits.room;
    },

    ready(msg) {
      state.nick = msg.nick;
      state.resumeTries = 0;
      setStatus("connected", "connected");
      state.wantedNick = msg.nick;
      try {
        localStorage.setItem("chat.nick", msg.nick);
      } catch {
        // Storage may be disabled; the nickname is only a convenience.
      }
      $("login").hidden = true;
      $("chat").hidden = false;
      $("me").hidden = false;
      $("me").textContent = `you are ${msg.nick}`;
      renderDirectory(msg.rooms, msg.total);
      const rooms = state.rooms.size ? [...state.rooms.keys()] : [FIRST_ROOM];
      if (!state.active) state.focusOnJoin = rooms[0];
      for (const name of rooms) send({ type: "join", room: name });
      $("text").focus();
    },

    rooms(msg) {
      renderDirectory(msg.rooms, msg.total);
    },

    joined(msg) {
      const room = getRoom(msg.room);
      room.members = new Set(msg.members);
      for (const item of msg.history) addMessage(room, item);
      if (room.lost) {
        notice(room, "Reconnected.");
        room.lost = false;
      }
      if (!state.active || state.focusOnJoin === msg.room) {
        state.focusOnJoin = null;
        activate(msg.room);
      }
      renderRooms();
      renderMembers();
    },

    left(msg) {
      const room = state.rooms.get(msg.room);
      if (!room) return;
      state.rooms.delete(msg.room);
      if (state.active === msg.room) {
        const next = state.rooms.keys().next();
        activate(next.done ? null : next.value);
      }
      renderRooms();
    },

    message(msg) {
      const room = state.rooms.get(msg.room);
      if (room) addMessage(room, msg);
    },

    presence(msg) {
      const room = state.rooms.get(msg.room);
      if (!room) return;
      const self = msg.nick === state.nick;
      if (msg.event === "join") {
        room.members.add(msg.nick);
        notice(room, self ? `You joined #${msg.room}.` : `${msg.nick} joined.`, msg.ts);
      } else if (msg.event === "leave") {
        room.members.delete(msg.nick);
        notice(room, `${msg.nick} left.`, msg.ts);
      }
      if (msg.room === state.active) renderMembers();
    },

    error(msg) {
      if (msg.code === "nick_taken" && state.rooms.size && state.resumeTries < 12) {
        // Coming back after a dropped connection the server has not noticed
        // yet: the name frees itself when the keepalive gives up on the old one.
        state.resumeTries += 1;
        setStatus("connecting", "waiting for the previous session to end…");
        setTimeout(() => {
          if (state.wantedNick && !state.nick) send({ type: "hello", nick: state.wantedNick });
        }, 5000);
        return;
      }
      if (!state.nick && ["nick_invalid", "nick_taken", "already_named"].includes(msg.code)) {
        // A nickname refused (also after a reconnect): ask again.
        state.wantedNick = null;
        $("chat").hidden = true;
        $("login").hidden = false;
        $("login-error").textContent = msg.message;
        $("nick").focus();
        return;
      }
      showError(msg.message);
    },
  };

  // -- rooms and rendering ---------------------------------------------------------

  function getRoom(name) {
    let room = state.rooms.get(name);
    if (!room) {
      room = { logEl: el("div", "room-log"), members: new Set(), seen: new Set(), unread: 0, lost: false };
      state.rooms.set(name, room);
    }
    return room;
  }

  function timeOf(ts) {
    const date = ts ? new Date(ts * 1000) : new Date();
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function append(room, node) {
    const log = $("log");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    room.logEl.append(node);
    if (room === state.rooms.get(state.active)) {
      if (atBottom) log.scrollTop = log.scrollHeight;
    } else {
      room.unread += 1;
      renderRooms();
    }
  }

  function addMessage(room, msg) {
    // After a reconnect the history repeats what is already shown.
    if (room.seen.has(msg.id)) return;
    room.seen.add(msg.id);
    const line = el("div", msg.nick === state.nick ? "msg own" : "msg");
    line.dataset.id = msg.id;
    line.append(el("span", "time", timeOf(msg.ts)), el("span", "nick", msg.nick), el("span", "text", msg.text));
    append(room, line);
  }

  function notice(room, text, ts) {
    const line = el("div", "notice");
    line.append(el("span", "time", timeOf(ts)), el("span", "text", text));
    append(room, line);
  }

  function activate(name) {
    state.active = name;
    const log = $("log");
    log.replaceChildren();
    const room = name ? state.rooms.get(name) : null;
    if (room) {
      room.unread = 0;
      log.append(room.logEl);
      log.scrollTop = log.scrollHeight;
    }
    $("room-title").textContent = name ? `#${name}` : "No room";
    $("leave-button").disabled = !room;
    $("text").disabled = !room;
    $("send").disabled = !room;
    renderRooms();
    renderMembers();
  }

  function renderRooms() {
    const list = $("joined");
    list.replaceChildren();
    for (const [name, room] of state.rooms) {
      const button = el("button", name === state.active ? "tab active" : "tab", `#${name}`);
      button.type = "button";
      button.dataset.room = name;
      button.addEventListener("click", () => activate(name));
      if (room.unread) button.append(el("span", "badge", String(room.unread)));
      const item = el("li");
      item.append(button);
      list.append(item);
    }
  }

  function renderMembers() {
    const list = $("member-list");
    list.replaceChildren();
    const room = state.rooms.get(state.active);
    const names = room ? [...room.members].sort((a, b) => a.localeCompare(b)) : [];
    for (const name of names) {
      const item = el("li", name === state.nick ? "member self" : "member", name);
      list.append(item);
    }
    $("member-count").textContent = String(names.length);
  }

  // The server lists the biggest rooms only; `total` says how many there are.
  function renderDirectory(rooms, total) {
    const list = $("directory");
    list.replaceChildren();
    for (const { name, members } of rooms || []) {
      const button = el("button", "room-link", `#${name}`);
      button.type = "button";
      button.append(el("span", "count", String(members)));
      button.addEventListener("click", () => joinRoom(name));
      const item = el("li");
      item.append(button);
      list.append(item);
    }
    const hidden = (total || 0) - list.children.length;
    if (hidden > 0) list.append(el("li", "empty", `and ${hidden} smaller rooms`));
    if (!list.children.length) list.append(el("li", "empty", "no open rooms"));
  }

  let errorTimer = null;
  function showError(text) {
    const banner = $("error");
    banner.textContent = text;
    banner.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => {
      banner.hidden = true;
    }, 6000);
  }

  function joinRoom(name) {
    name = name.trim().toLowerCase();
    if (!name) return;
    if (state.rooms.has(name)) {
      activate(name);
      return;
    }
    state.focusOnJoin = name;
    if (!send({ type: "join", room: name })) showError("Not connected; try again in a moment.");
  }

  // -- user actions ------------------------------------------------------------------

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const nick = $("nick").value.trim();
    if (!nick) return;
    $("login-error").textContent = "";
    state.wantedNick = nick;
    // If the socket is not open yet, "open" sends the hello.
    send({ type: "hello", nick });
  });

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    joinRoom($("room-input").value);
    $("room-input").value = "";
  });

  $("leave-button").addEventListener("click", () => {
    if (state.active) send({ type: "leave", room: state.active });
  });

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("text");
    const text = input.value.trim();
    if (!text || !state.active) return;
    if (send({ type: "say", room: state.active, text })) {
      input.value = "";
    } else {
      showError("Not connected; your message was not sent.");
    }
  });

  try {
    $("nick").value = localStorage.getItem("chat.nick") || "";
  } catch {
    // No storage: start with an empty field.
  }
  connect();
})();
