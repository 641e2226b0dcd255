// A streaming Server-Sent Events parser for fetch() bodies (the HTML spec's algorithm): lines end
// in \n, \r\n or \r; "event", "data" (joined with \n), "id" and "retry" fields; ":" comments are
// skipped; an event is dispatched at a blank line. EventSource cannot POST or send headers.

export async function* readEvents(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { type: "", data: [], id: null };
  const onAbort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let start = 0;
      for (;;) {
        const match = /\r\n|\r|\n/.exec(buffer.slice(start));
        if (!match) break;
        // A lone \r at the very end may be the first half of \r\n: wait for more.
        if (match[0] === "\r" && start + match.index === buffer.length - 1) break;
        const line = buffer.slice(start, start + match.index);
        start += match.index + match[0].length;
        if (line === "") {
          if (event.data.length) {
            yield { event: event.type || "message", data: event.data.join("\n"), id: event.id };
          }
          event = { type: "", data: [], id: event.id };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") event.type = val;
        else if (field === "data") event.data.push(val);
        else if (field === "id" && !val.includes("\0")) event.id = val;
      }
      buffer = buffer.slice(start);
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.releaseLock?.();
  }
}
