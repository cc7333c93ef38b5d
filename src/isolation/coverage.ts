// Which element ranges of one (parameter, side) a pass has received: sorted, disjoint, merged
// half-open intervals. Trainers send chunks in order, so the common case is one interval that
// grows at its end (O(1)); out-of-order chunks cost a binary search.

export class Coverage {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private total = 0;

  /** Elements covered so far. */
  get covered(): number {
    return this.total;
  }

  /**
   * Records [start, end) (start < end). If any part was already covered, records nothing and
   * returns the first overlapping range.
   */
  add(start: number, end: number): readonly [number, number] | null {
    const { starts, ends } = this;
    const n = ends.length;
    if (n === 0 || start >= ends[n - 1]) {
      if (n > 0 && start === ends[n - 1]) ends[n - 1] = end;
      else {
        starts.push(start);
        ends.push(end);
      }
      this.total += end - start;
      return null;
    }
    // First interval that ends after `start`; it exists because start < ends[n - 1].
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ends[mid] <= start) lo = mid + 1;
      else hi = mid;
    }
    if (starts[lo] < end) return [Math.max(start, starts[lo]), Math.min(end, ends[lo])];
    const joinPrev = lo > 0 && ends[lo - 1] === start;
    const joinNext = starts[lo] === end;
    if (joinPrev && joinNext) {
      ends[lo - 1] = ends[lo];
      starts.splice(lo, 1);
      ends.splice(lo, 1);
    } else if (joinPrev) {
      ends[lo - 1] = end;
    } else if (joinNext) {
      starts[lo] = start;
    } else {
      starts.splice(lo, 0, start);
      ends.splice(lo, 0, end);
    }
    this.total += end - start;
    return null;
  }

  /** The first range of [0, numel) not covered, or null when coverage is complete. */
  firstGap(numel: number): readonly [number, number] | null {
    const { starts, ends } = this;
    if (numel === 0) return null;
    if (ends.length === 0) return [0, numel];
    if (starts[0] > 0) return [0, starts[0]];
    if (ends.length > 1) return [ends[0], starts[1]];
    return ends[0] < numel ? [ends[0], numel] : null;
  }
}
