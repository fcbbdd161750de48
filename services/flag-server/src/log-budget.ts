/**
 * At most `perWindow` log lines per `windowMs` for one kind of event any client can cause, so no
 * client can fill the log: past the budget lines are dropped and counted, and the next line written
 * says how many were dropped before it. (Metrics still count every event.)
 */
export class LogBudget {
  private windowStart = Number.NEGATIVE_INFINITY;
  private used = 0;
  private suppressed = 0;

  constructor(
    readonly perWindow: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Takes one line from the budget: undefined when it is spent (the line is dropped), else the number
   * of lines dropped since the last one written, for the caller to log with it.
   */
  take(): { suppressed: number } | undefined {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      this.windowStart = t;
      this.used = 0;
    }
    if (this.used >= this.perWindow) {
      this.suppressed++;
      return undefined;
    }
    this.used++;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    return { suppressed };
  }
}
