// COUNT EventSources of Node's `eventsource` package, as many clients of one
// host would hold them, for tests/test_restart_storm.py.
//
//   node tests/js/storm.mjs URL SESSIONID COUNT
//
// Client i connects to URL?client=nI, so the test can tell its attempts apart,
// and prints one JSON line per thing it sees: {"client", "stats": nodes},
// {"client", "reconnect": retry}, {"client", "error"}.
import { EventSource } from "eventsource";

const [url, sessionId, count] = process.argv.slice(2);
const emit = (record) => process.stdout.write(JSON.stringify(record) + "\n");

for (let index = 0; index < Number(count); index++) {
  const client = `n${index}`;
  const source = new EventSource(`${url}?client=${client}`, {
    fetch: (input, init) =>
      fetch(input, { ...init, headers: { ...init.headers, Cookie: `sessionid=${sessionId}` } }),
  });
  source.addEventListener("stats", (event) =>
    emit({ client, stats: JSON.parse(event.data).nodes }));
  source.addEventListener("reconnect", (event) =>
    emit({ client, reconnect: JSON.parse(event.data).retry }));
  source.addEventListener("error", () => emit({ client, error: true }));
}
