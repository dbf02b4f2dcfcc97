// The screen flow as an explicit state machine.
//
// Each screen is {enter(data, turn), exit()} bound to a <section id="screen-NAME">. Exactly one
// screen is shown; `go` leaves the current one (exit, hide, abort its pending work) and enters
// the next (show, focus its heading so screen readers announce it, enter). Work a screen starts
// carries its `turn`: once the screen is left, `turn.live` is false and `turn.signal` aborts
// its requests, so a late answer never drives a screen that is gone.
//
// One failsafe: any error that no screen expected (a thrown exception, a rejected promise, a
// failed enter) goes to `onFailure`, which wipes the session and returns to the first screen.

export class Turn {
  constructor(name) {
    this.name = name;
    this.controller = new AbortController();
  }
  get signal() { return this.controller.signal; }
  get live() { return !this.controller.signal.aborted; }
  end() { this.controller.abort(); }
}

export class Machine {
  constructor({ screens, initial, onFailure, onChange }) {
    this.screens = screens;
    this.initial = initial;
    this.onFailure = onFailure;
    this.onChange = onChange || (() => {});
    this.current = null;
    this.turn = null;
    this.failing = false;
    window.addEventListener("error", (event) => this.fail(event.error || event.message));
    window.addEventListener("unhandledrejection", (event) => this.fail(event.reason));
  }

  section(name) {
    return document.getElementById(`screen-${name}`);
  }

  go(name, data) {
    const next = this.screens[name];
    if (!next) {
      this.fail(new Error(`no screen ${name}`));
      return;
    }
    if (this.current) {
      this.turn.end();
      try {
        this.screens[this.current].exit?.();
      } catch (error) {
        console.error(error);
      }
      this.section(this.current).hidden = true;
    }
    this.current = name;
    this.turn = new Turn(name);
    const section = this.section(name);
    section.hidden = false;
    document.body.dataset.state = name;
    this.onChange(name);
    const heading = section.querySelector("h1, h2");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
    this.guard(() => next.enter?.(data, this.turn));
  }

  // Run a screen's (possibly async) work; anything it throws is unexpected: the failsafe.
  guard(work) {
    try {
      const result = work();
      if (result && typeof result.catch === "function") {
        result.catch((error) => this.fail(error));
      }
    } catch (error) {
      this.fail(error);
    }
  }

  fail(error) {
    if (error && error.name === "AbortError") return; // a left screen's request, cancelled
    if (this.failing) return;
    this.failing = true;
    console.error("failsafe:", error);
    Promise.resolve()
      .then(() => this.onFailure(error))
      .catch(() => {})
      .finally(() => {
        this.failing = false;
        this.go(this.initial, { failed: true });
      });
  }
}
