// Which rows of a long list to put in the DOM: the ones in view plus a
// few either side (the overscan), with the heights of the rows left out
// above and below, so a list of 500 containers holds a few dozen rows
// and still scrolls as if all were there. Rows have one fixed height.

export interface Window {
  /** The first row in the DOM. */
  start: number;
  /** One past the last row in the DOM. */
  end: number;
  /** The height of the rows left out above, in pixels. */
  before: number;
  /** The height of the rows left out below, in pixels. */
  after: number;
}

/** The rows of `count`, each `row` pixels high, to render when the list
 * is scrolled to `top` in a viewport `height` pixels high, with
 * `overscan` more on each side. */
export function windowOf(count: number, top: number, height: number, row: number, overscan: number): Window {
  if (count <= 0) return { start: 0, end: 0, before: 0, after: 0 };
  const first = Math.min(Math.max(0, Math.floor(top / row)), count - 1);
  const visible = Math.ceil(Math.max(height, row) / row) + 1;
  const start = Math.max(0, first - overscan);
  const end = Math.min(count, first + visible + overscan);
  return { start, end, before: start * row, after: (count - end) * row };
}
