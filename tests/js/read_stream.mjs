// Read graphapp's stream with Node's `eventsource` package, as its users do.
//
//   node tests/js/read_stream.mjs URL SESSIONID
//
// Prints one JSON line per thing the EventSource reports, as tests/sse_reader.py
// does for the Python libraries: {"event", "data", "retry": null} per event (the
// package does not show the retry field), {"open": true} per connection,
// {"error": ...} per failed or ended connection, {"end": true} when it gives up.
import { EventSource } from "eventsource";

const [url, sessionId] = process.argv.slice(2);
const emit = (record) => process.stdout.write(JSON.stringify(record) + "\n");

// The package's documented way to send headers: its own fetch.
const source = new EventSource(url, {
  fetch: (input, init) =>
    fetch(input, { ...init, headers: { ...init.headers, Cookie: `sessionid=${sessionId}` } }),
});

source.addEventListener("open", () => emit({ open: true }));
source.addEventListener("error", (event) => {
  emit({ error: event.message || "connection lost", code: event.code ?? null });
  if (source.readyState === EventSource.CLOSED) {
    emit({ end: true });
    process.exit(0);
  }
});
// "message" too: an unnamed event (a retry in a block of its own, in some
// clients) must never come.
for (const name of ["stats", "history", "change", "status", "reconnect", "message"]) {
  source.addEventListener(name, (event) => emit({ event: name, data: event.data, retry: null }));
}
