import type { ChatMessage, JoinedFrame, Since } from './protocol.ts';

interface RoomState {
  epoch: string;
  /** Every message up to this `seq` has been handed to the application (or was before its join). */
  last: number;
  /** The highest `seq` the room is known to have numbered: from `joined` and from messages. */
  target: number;
  /** Messages after a gap, waiting for the numbers before them. */
  readonly pending: Map<number, ChatMessage>;
}

/** What a `joined` reply hands to the application. */
export interface JoinOutcome {
  /** Messages to emit now, in `seq` order. */
  readonly emit: ChatMessage[];
  /** `recovered: false`: the room could not say what was missed. */
  readonly reset: boolean;
}

const SEEN_LIMIT = 5000;

/**
 * Per-room delivery bookkeeping of the client: the `(epoch, seq)` it holds, duplicates
 * dropped, and messages put in `seq` order. Numbers may be skipped, so a gap is not proof of a
 * loss: a message that arrives after a gap waits while the client asks the room again (`join`
 * with `since`), and whatever the room's history then does not hold below the number known
 * when the wait began was never stored. Pure bookkeeping: the client owns the socket and timers.
 */
export class DeliveryTracker {
  readonly #rooms = new Map<string, RoomState>();
  readonly #seen = new Set<string>();

  /** Where to rejoin `room` from: the last `seq` held under its epoch. */
  position(room: string): Since | undefined {
    const s = this.#rooms.get(room);
    return s ? { epoch: s.epoch, seq: s.last } : undefined;
  }

  /** The highest `seq` known for `room`: what a wait begun now is waiting for. */
  target(room: string): number {
    return this.#rooms.get(room)?.target ?? 0;
  }

  /** Whether `room` has numbers known but not yet handed over (a gap to fill). */
  waiting(room: string): boolean {
    const s = this.#rooms.get(room);
    return s !== undefined && (s.pending.size > 0 || s.target > s.last);
  }

  forget(room: string): void {
    this.#rooms.delete(room);
  }

  clear(): void {
    this.#rooms.clear();
    this.#seen.clear();
  }

  /** A message delivered live: the messages to emit now, in order (none for a duplicate). */
  receive(m: ChatMessage): ChatMessage[] {
    if (typeof m.seq !== 'number' || typeof m.epoch !== 'string') return this.#fresh(m) ? [m] : [];
    const s = this.#rooms.get(m.room);
    if (!s || s.epoch !== m.epoch) {
      // A room never joined (its first message starts the count), or its numbering started over.
      const out = s ? this.#drain(s) : [];
      this.#rooms.set(m.room, { epoch: m.epoch, last: m.seq, target: m.seq, pending: new Map() });
      return this.#fresh(m) ? [...out, m] : out;
    }
    s.target = Math.max(s.target, m.seq);
    if (m.seq <= s.last) {
      // Held already, or one given up on as never stored that turns out late: once, even late.
      return this.#fresh(m) ? [m] : [];
    }
    s.pending.set(m.seq, m);
    return this.#flush(s);
  }

  /**
   * The reply to a join. `asked` is the position the join asked from (`since`), if any, and
   * `cutoff` the highest `seq` known when the client began waiting for it: numbers up to it
   * that a recovered history lacks were skipped, and the messages above it wait for the next
   * round, as they may have neighbours still being stored.
   */
  joined(room: string, reply: JoinedFrame, asked?: Since, cutoff = 0): JoinOutcome {
    const s = this.#rooms.get(room);
    const history = reply.history ?? [];
    if (typeof reply.seq !== 'number' || typeof reply.epoch !== 'string') {
      // A server without numbering: only duplicates can be dropped.
      return { emit: asked ? history.filter((m) => this.#fresh(m)) : this.#markAll(history), reset: false };
    }
    if (!asked) {
      this.#markAll(history);
      if (s && s.epoch === reply.epoch) {
        s.target = Math.max(s.target, reply.seq);
        return { emit: [], reset: false };
      }
      this.#rooms.set(room, { epoch: reply.epoch, last: reply.seq, target: reply.seq, pending: new Map() });
      return { emit: [], reset: false };
    }
    if (reply.recovered === true && s && s.epoch === reply.epoch && reply.epoch === asked.epoch) {
      for (const m of history) if (m.seq > s.last && m.epoch === s.epoch) s.pending.set(m.seq, m);
      s.target = Math.max(s.target, reply.seq, ...history.map((m) => m.seq));
      return { emit: this.#release(s, cutoff), reset: false };
    }
    // Not recovered: what was missed is unknown. Hand over what is at hand, then start afresh.
    const out = s ? this.#drain(s) : [];
    for (const m of [...history].sort((a, b) => a.seq - b.seq)) if (this.#fresh(m)) out.push(m);
    this.#rooms.set(room, { epoch: reply.epoch, last: reply.seq, target: reply.seq, pending: new Map() });
    return { emit: out, reset: true };
  }

  /**
   * Gives up waiting in a room the client cannot ask (one it never joined, such as its own
   * `user:` room): numbers up to `cutoff`, the highest known when the wait began, that have not
   * arrived by now are taken as skipped. Returns the messages to emit now, in order.
   */
  skipTo(room: string, cutoff: number): ChatMessage[] {
    const s = this.#rooms.get(room);
    return s ? this.#release(s, cutoff) : [];
  }

  /** Hands over what is pending up to `cutoff` (the numbers missing below it were skipped), then what follows it without a gap. */
  #release(s: RoomState, cutoff: number): ChatMessage[] {
    const out: ChatMessage[] = [];
    for (const seq of [...s.pending.keys()].sort((a, b) => a - b)) {
      if (seq > cutoff) break;
      const m = s.pending.get(seq) as ChatMessage;
      s.pending.delete(seq);
      if (this.#fresh(m)) out.push(m);
    }
    s.last = Math.max(s.last, Math.min(cutoff, s.target));
    return [...out, ...this.#flush(s)];
  }

  /** Hands over the pending messages that follow `last` without a gap. */
  #flush(s: RoomState): ChatMessage[] {
    const out: ChatMessage[] = [];
    for (let next = s.pending.get(s.last + 1); next; next = s.pending.get(s.last + 1)) {
      s.pending.delete(next.seq);
      s.last = next.seq;
      if (this.#fresh(next)) out.push(next);
    }
    return out;
  }

  /** Every pending message, in order: the room's numbering is being left behind. */
  #drain(s: RoomState): ChatMessage[] {
    const out = [...s.pending.values()].sort((a, b) => a.seq - b.seq).filter((m) => this.#fresh(m));
    s.pending.clear();
    return out;
  }

  #markAll(history: readonly ChatMessage[]): ChatMessage[] {
    for (const m of history) this.#fresh(m);
    return [];
  }

  /** True the first time a message is seen. */
  #fresh(m: ChatMessage): boolean {
    if (this.#seen.has(m.messageId)) return false;
    this.#seen.add(m.messageId);
    if (this.#seen.size > SEEN_LIMIT) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
    return true;
  }
}
