/** The parent side of dispatcher-process.ts: start it, ask it for stats, stop it. */
import { type ChildProcess, fork } from "node:child_process";
import { join } from "node:path";
import type { ChildMessage, ChildStats, DispatcherProcessOptions, ParentMessage } from "./dispatcher-process.ts";

const SCRIPT = join(import.meta.dirname, "dispatcher-process.ts");

export class DispatcherChild {
  readonly url: string;
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly stderr: string[];
  private nextId = 1;
  private exited = false;

  private constructor(child: ChildProcess, url: string, stderr: string[]) {
    this.child = child;
    this.url = url;
    this.pid = child.pid ?? -1;
    this.stderr = stderr;
    child.on("exit", () => {
      this.exited = true;
    });
  }

  /** Forks the dispatcher and resolves once it listens; rejects with its stderr when it dies or hangs first. */
  static start(options: DispatcherProcessOptions, timeoutMs = 60_000): Promise<DispatcherChild> {
    const stderr: string[] = [];
    const child = fork(SCRIPT, [JSON.stringify(options)], {
      execArgv: ["--expose-gc"],
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      stderr.push(chunk);
      if (stderr.length > 50) stderr.shift();
    });
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        child.kill("SIGKILL");
        reject(new Error(`the dispatcher process ${why}${stderr.length ? `; its stderr: ${stderr.join("").slice(-2000)}` : ""}`));
      };
      const timer = setTimeout(() => fail(`did not listen within ${timeoutMs / 1000} s`), timeoutMs);
      child.once("exit", (code, signal) => fail(`exited before it was ready (${signal ?? `exit code ${code}`})`));
      child.once("error", (error) => fail(`could not start: ${error.message}`));
      child.on("message", (message: ChildMessage) => {
        if (message.type !== "ready") return;
        clearTimeout(timer);
        child.removeAllListeners("exit");
        child.removeAllListeners("error");
        resolve(new DispatcherChild(child, message.url, stderr));
      });
    });
  }

  /** Memory and tracking counts; with gc, also the RSS right after a full collection. */
  stats(options: { gc?: boolean } = {}, timeoutMs = 30_000): Promise<ChildStats> {
    if (this.exited) return Promise.reject(new Error(`the dispatcher process has exited; stderr: ${this.stderrTail()}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onMessage = (message: ChildMessage) => {
        if (message.type !== "stats" || message.id !== id) return;
        clearTimeout(timer);
        this.child.off("message", onMessage);
        resolve(message.stats);
      };
      const timer = setTimeout(() => {
        this.child.off("message", onMessage);
        reject(new Error(`the dispatcher process did not answer a stats request within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.child.on("message", onMessage);
      const request: ParentMessage = { type: "stats", id, ...(options.gc && { gc: true }) };
      this.child.send(request);
    });
  }

  stderrTail(): string {
    return this.stderr.join("").slice(-2000);
  }

  /** Asks it to stop; SIGKILL after timeoutMs. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    const stop: ParentMessage = { type: "stop" };
    try {
      this.child.send(stop);
    } catch {
      // The channel is already closed; the kill below ends it.
    }
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    await exited;
    clearTimeout(timer);
  }
}
