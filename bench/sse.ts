/** A server-sent events client for the dispatcher's GET /v1/events, timing each event's arrival. */

export interface TransitionEvent {
  readonly id: string;
  readonly data: {
    readonly jobId: number;
    readonly sequence: number;
    readonly phase: string;
    readonly reason: string;
    readonly at: string;
  };
  /** performance.now() when the event's last line arrived. */
  readonly receivedAt: number;
}

export interface EventStream {
  /** Resolves once the dispatcher has subscribed the stream (its ": connected" comment arrived). */
  readonly connected: Promise<void>;
  /** Settles when the stream ends; rejects if it broke before close(). */
  readonly done: Promise<void>;
  close(): void;
}

export function openEventStream(url: string, token: string, onEvent: (event: TransitionEvent) => void): EventStream {
  const controller = new AbortController();
  let closed = false;
  let markConnected: () => void = () => undefined;
  let failConnect: (error: unknown) => void = () => undefined;
  const connected = new Promise<void>((resolve, reject) => {
    markConnected = resolve;
    failConnect = reject;
  });
  const done = (async () => {
    try {
      const response = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
      if (response.status !== 200 || !response.body) throw new Error(`GET ${url} answered ${response.status}`);
      const decoder = new TextDecoder();
      let buffer = "";
      for await (const chunk of response.body) {
        const receivedAt = performance.now();
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(": connected")) markConnected();
          const id = block.match(/^id: (.*)$/m)?.[1];
          const data = block.match(/^data: (.*)$/m)?.[1];
          if (id !== undefined && data !== undefined) onEvent({ id, data: JSON.parse(data), receivedAt });
          end = buffer.indexOf("\n\n");
        }
      }
      if (!closed) throw new Error("the event stream ended unexpectedly");
    } catch (error) {
      failConnect(error);
      if (!closed) throw error;
    }
  })();
  // Keep an unobserved failure from crashing the process; callers await `done` or `connected`.
  done.catch(() => undefined);
  return {
    connected,
    done,
    close() {
      closed = true;
      controller.abort();
    },
  };
}
