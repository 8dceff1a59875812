// scripts/bench-peers/socketio-server.js PORT -- the Socket.IO 4 peer of scripts/bench
// --websocket: sockets join a room on a `join` event (acked), and whatever a publisher
// sends as `pub` is emitted to the room as `msg`. WebSocket transport only.
const { Server } = require("socket.io");
const port = Number(process.argv[2]);
const io = new Server(port, { transports: ["websocket"], serveClient: false });
io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack();
  });
  socket.on("pub", (text) => io.to("bench").emit("msg", text));
});
console.log("socket.io listening on " + port);
