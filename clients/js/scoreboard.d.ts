// Type declarations for scoreboard.js (the scoreboard SDK). See docs/clients.md.

export declare const CHANNEL: "scoreboard_updates";

export interface Entry {
  rank: number;
  user_id: string;
  display_name: string;
  score: number;
}

/** A board position: `seq` counts published top-10 changes within `epoch`. */
export interface Position {
  epoch: number;
  seq: number;
}

export interface Board extends Position {
  top: Entry[];
}

/** A server frame on `/ws` or the SSE stream. */
export type BoardMessage = Board & { type: "snapshot" | "update"; channel: typeof CHANNEL };
export interface ErrorMessage {
  type: "error";
  code: string;
  detail: string;
}

export interface BoardEvent extends Board {
  /** "snapshot" when the board was replaced as truth, "update" for the next step. */
  type: "snapshot" | "update";
}

export type ConnectionState = "idle" | "connecting" | "live" | "reconnecting" | "offline" | "closed";

export interface StateEvent {
  state: ConnectionState;
  transport: "websocket" | "sse";
  attempt?: number;
  /** With "reconnecting": how long until the next attempt. */
  retryInMs?: number;
  reason?: string;
  /** True when a gap or a new epoch made the client re-subscribe with `since`. */
  resync?: boolean;
}

export interface Session {
  userId: string;
  username: string;
  accessToken: string;
  refreshToken: string;
  /** Milliseconds since the Unix epoch. */
  expiresAt: number;
}

export interface Registered {
  user_id: string;
  username: string;
  display_name: string;
}

export interface Ticket {
  action_id: string;
  type: string;
  points: number;
  issued_at: string;
  expires_at: string;
}

export interface Completed {
  message: string;
  new_score: number;
  rank: number | null;
  /** Set when a retried attempt found the first one had already landed (a 409 to the retry). */
  duplicate?: true;
}

export interface UserScore {
  user_id: string;
  display_name: string;
  score: number;
  rank: number | null;
}

export interface Backoff {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
}

export interface ClientOptions {
  /** The server, e.g. "https://scores.example.com"; defaults to the page's origin in a browser. */
  baseUrl?: string;
  /** Defaults to baseUrl with ws(s):// and /ws. */
  wsUrl?: string;
  /** Defaults to baseUrl + /api/leaderboard/stream. */
  streamUrl?: string;
  /** "auto" (default): WebSocket, SSE after `wsFailuresBeforeFallback` failed opens in a row. */
  transport?: "auto" | "websocket" | "sse";
  wsFailuresBeforeFallback?: number;
  backoff?: Backoff;
  /** After a gap, how long to wait for the server's replay before taking the next message as truth (3000). */
  resyncPatienceMs?: number;
  /** How often `completeAction` retries a lost answer or a 503 (default 2). */
  completeRetries?: number;
  /** fetch's `credentials` for API calls (default "same-origin", so login also sets the cookie for /ws). */
  credentials?: "omit" | "same-origin" | "include";
  session?: Session | null;
  fetch?: typeof globalThis.fetch;
  WebSocket?: new (url: string) => WebSocket;
  random?: () => number;
}

export declare class ScoreboardError extends Error {
  /** The HTTP status; 0 for a transport failure or a WebSocket `error` message. */
  readonly status: number;
  /** The problem document's stable `code`, e.g. "duplicate_action". */
  readonly code: string;
  readonly problem: Record<string, unknown>;
  /** Retry-After in seconds, when the server sent one. */
  readonly retryAfter: number | null;
  constructor(status: number, problem?: Record<string, unknown>, retryAfter?: number | null);
}

export declare function backoffDelay(attempt: number, backoff?: Backoff, random?: () => number): number;

export declare class BoardState {
  constructor(options?: { patienceMs?: number });
  epoch: number | null;
  seq: number;
  top: Entry[];
  /** How long to wait for a resync's answer before taking the next message as truth (default 3000). */
  patienceMs: number;
  /** When the pending resync was asked for (the `now` given to `receive`), or null. */
  resyncSince: number | null;
  readonly position: Position | null;
  judge(message: BoardMessage): "apply" | "stale" | "resync";
  /** Whether to apply `message` now, and whether to ask the server for a resync. */
  receive(message: BoardMessage, now: number): { apply: boolean; resync: boolean };
  apply(message: BoardMessage): void;
}

export interface Events {
  board: BoardEvent;
  state: StateEvent;
  session: Session | null;
  error: Error;
}

export declare class ScoreboardClient {
  constructor(options?: ClientOptions);
  readonly baseUrl: string;
  readonly board: Board | null;
  readonly state: ConnectionState;
  readonly session: Session | null;

  on<K extends keyof Events>(event: K, callback: (detail: Events[K]) => void): () => void;
  /** Current board (if any) now, then every newer one; connects if not connected. Returns "stop". */
  onBoard(callback: (board: BoardEvent) => void): () => void;
  connect(): void;
  disconnect(): void;

  register(username: string, password: string, displayName?: string): Promise<Registered>;
  login(username: string, password: string): Promise<Session>;
  refresh(): Promise<Session>;
  logout(): Promise<void>;
  setSession(session: Session | null): void;

  requestAction(type?: string): Promise<Ticket>;
  completeAction(actionId: string): Promise<Completed>;
  leaderboard(limit?: number): Promise<Board>;
  userScore(userId?: string): Promise<UserScore>;
}
