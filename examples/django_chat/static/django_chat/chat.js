// The chat page: one WebSocket to the lobby, its lines in a <pre>.
const log = document.getElementById("log");
const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws/chat/lobby/");
ws.onmessage = (event) => {
  const data = JSON.parse(event.data);
  const lines = data.type === "hello" ? data.history : [data];
  for (const line of lines) log.textContent += (line.user || "") + ": " + (line.text || line.error) + "\n";
};
document.getElementById("f").onsubmit = (event) => {
  event.preventDefault();
  ws.send(document.getElementById("m").value);
  document.getElementById("m").value = "";
};
