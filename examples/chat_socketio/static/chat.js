// The Socket.IO chat page. ?transport=polling forces HTTP long-polling;
// otherwise the client starts with polling and upgrades to WebSocket.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const transports = params.get("transport") === "polling" ? ["polling"] : ["polling", "websocket"];
let socket = null;

function status(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function line(kind, nick, text) {
  const li = document.createElement("li");
  li.className = kind;
  if (nick) {
    const n = document.createElement("span");
    n.className = "nick";
    n.textContent = nick;
    li.appendChild(n);
  }
  const t = document.createElement("span");
  t.className = "text";
  t.textContent = text;
  li.appendChild(t);
  $("log").appendChild(li);
  return li;
}

function showRoom(room, members) {
  $("room-title").textContent = "#" + room;
  const list = $("member-list");
  list.replaceChildren(...members.map((m) => {
    const li = document.createElement("li");
    li.textContent = m;
    return li;
  }));
}

function connect(nick) {
  socket = io({ transports, auth: { nick }, reconnection: false });
  socket.on("connect", () => {
    status("connected", "connected");
    $("login").hidden = true;
    $("chat").hidden = false;
    $("transport").textContent = socket.io.engine.transport.name;
    socket.io.engine.on("upgrade", (t) => { $("transport").textContent = t.name; });
  });
  socket.on("connect_error", (err) => {
    status("error", "refused");
    $("login-error").textContent = err.message;
  });
  socket.on("disconnect", () => status("disconnected", "disconnected"));
  socket.on("members", ({ room, members }) => {
    if ("#" + room === $("room-title").textContent || !$("room-title").textContent) showRoom(room, members);
  });
  socket.on("notice", (text) => line("notice", "", text));
  socket.on("said", ({ nick, text }) => line("msg", nick, text));
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  status("connecting", "connecting");
  connect($("nick").value);
});

$("join").addEventListener("submit", async (e) => {
  e.preventDefault();
  const room = $("room-input").value;
  $("room-input").value = "";
  const answer = await socket.timeout(10000).emitWithAck("join", room);
  if (answer.error) { line("notice", "", answer.error); return; }
  $("log").replaceChildren();
  showRoom(answer.room, answer.members);
});

$("say").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("text").value;
  if (!text) return;
  $("text").value = "";
  const li = line("msg pending", "me", text);
  try {
    const answer = await socket.timeout(10000).emitWithAck("say", text);
    li.classList.remove("pending");
    li.classList.add(answer.delivered ? "delivered" : "failed");
  } catch (err) {
    li.classList.add("failed");
  }
});
