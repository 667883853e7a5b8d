// socket.io-client (the official client, installed by scripts/setup-node.sh)
// under Node against examples.socketio_echo: prints one JSON line of results.
// Usage: node socketio_node_client.js URL TRANSPORTS(comma-separated)
const { io } = require("socket.io-client");

const [url, transports] = process.argv.slice(2);
const results = {};
const socket = io(url, { transports: transports.split(","), auth: { token: "node" }, reconnection: false });
const custom = io(url + "/custom", { transports: transports.split(","), reconnection: false });
const timer = setTimeout(() => finish("timeout"), 10000);

function finish(error) {
  clearTimeout(timer);
  results.error = error || null;
  results.transport = socket.io.engine ? socket.io.engine.transport.name : null;
  console.log(JSON.stringify(results));
  socket.close();
  custom.close();
  process.exit(0);
}

socket.on("connect_error", (err) => finish("connect_error " + err.message));
socket.on("auth", async (auth) => {
  results.auth = auth;
  socket.emit("message", 1, "2", { 3: [true] });
  results.back = await new Promise((resolve) => socket.once("message-back", (...args) => resolve(args)));
  results.ack = await socket.timeout(5000).emitWithAck("message-with-ack", "x", { y: 1 });
  const bin = await socket.timeout(5000).emitWithAck("message-with-ack", Buffer.from([1, 2, 3]));
  results.binary = Array.from(bin);
  results.custom = await new Promise((resolve) => {
    if (custom.connected) resolve(custom.id !== undefined);
    else custom.once("connect", () => resolve(custom.id !== undefined));
  });
  const refused = io(url + "/random", { transports: transports.split(","), reconnection: false });
  results.refused = await new Promise((resolve) => refused.once("connect_error", (err) => resolve(err.message)));
  refused.close();
  if (transports.includes("websocket") && transports.includes("polling")) {
    // wait for the upgrade
    for (let i = 0; i < 100 && socket.io.engine.transport.name !== "websocket"; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  finish();
});
