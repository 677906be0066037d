// A live subscriber of one of the dispatcher's server-sent event streams, as a client reads it: each
// event's id and its JSON data, in order, until closed.
export interface Subscription<T> {
  /** The events so far, each with its `id`. */
  readonly events: (T & { readonly id: string })[];
  /** Ends the stream (the client hangs up) and waits for the reader. */
  close(): Promise<void>;
}

export function subscribeSse<T>(url: string, headers: Readonly<Record<string, string>>): Subscription<T> {
  const events: (T & { id: string })[] = [];
  const controller = new AbortController();
  const done = (async () => {
    const response = await fetch(url, { headers, signal: controller.signal });
    if (response.status !== 200) throw new Error(`GET ${url}: ${response.status}`);
    let buffer = "";
    try {
      for await (const chunk of response.body ?? []) {
        buffer += Buffer.from(chunk).toString();
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = block.match(/^id: (.*)$/m)?.[1];
          const data = block.match(/^data: (.*)$/m)?.[1];
          if (id !== undefined && data !== undefined) events.push({ id, ...(JSON.parse(data) as T) });
        }
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    }
  })();
  return {
    events,
    close: async () => {
      controller.abort();
      await done;
    },
  };
}
