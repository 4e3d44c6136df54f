// Undo/redo by snapshots: after each user gesture the graph is serialised and compared with the last state;
// a difference becomes an undo step. Snapshots are cheap next to a user's pace, even at hundreds of nodes.

const LIMIT = 100;

export class UndoStack {
  #past: string[] = [];
  #future: string[] = [];
  #current: string;

  constructor(
    private readonly snapshot: () => string,
    private readonly restore: (state: string) => void,
  ) {
    this.#current = snapshot();
  }

  /** Records the current state if it changed; returns true when it did. */
  check(): boolean {
    const state = this.snapshot();
    if (state === this.#current) return false;
    this.#past.push(this.#current);
    if (this.#past.length > LIMIT) this.#past.shift();
    this.#future = [];
    this.#current = state;
    return true;
  }

  /** Forgets history, e.g. after loading another workflow. */
  reset(): void {
    this.#past = [];
    this.#future = [];
    this.#current = this.snapshot();
  }

  /**
   * The graph was loaded again from the current state (its tab shown again): compare the next gesture with the
   * graph as loaded, which renumbers what it derives, so that gesture does not look like an edit.
   */
  rebase(): void {
    this.#current = this.snapshot();
  }

  undo(): boolean {
    this.check();
    return this.#step(this.#past, this.#future);
  }

  redo(): boolean {
    return this.#step(this.#future, this.#past);
  }

  /** Moves to the last state of `from`, keeping the current one on `to`; false when `from` is empty. */
  #step(from: string[], to: string[]): boolean {
    const state = from.pop();
    if (state === undefined) return false;
    to.push(this.#current);
    this.restore(state);
    // Loading a state renumbers what the graph derives (execution order): the state to compare the next
    // gesture with is the graph as restored, or that gesture would look like an edit and drop the redo steps.
    this.#current = this.snapshot();
    return true;
  }
}
