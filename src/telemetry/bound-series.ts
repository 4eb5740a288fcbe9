import type { Histogram } from "prom-client";
import type { ExemplarLabelSet, HistogramSeries, SeriesHistogram } from "./series-histogram.js";

/**
 * A histogram found on the registry under one of the store's names: a `SeriesHistogram` (this
 * package's, possibly from another loaded copy of it) or a prom-client `Histogram` the
 * application registered first.
 */
export type StoreHistogram<T extends string> = SeriesHistogram<T> | Histogram<T>;

/** Label sets already created at zero on a prom-client histogram. */
const zeroed = new WeakMap<object, Set<string>>();

/**
 * One series of `histogram`, created at zero if it does not exist yet, bound once so each store
 * operation observes without building a label object.
 */
export function histogramSeries<T extends string>(
  histogram: StoreHistogram<T>,
  labels: Readonly<Record<T, string>>,
): HistogramSeries {
  // Duck-typed rather than `instanceof`, so a copy of this package loaded twice shares it.
  if (typeof (histogram as Partial<SeriesHistogram<T>>).series === "function") {
    return (histogram as SeriesHistogram<T>).series(labels);
  }
  return promClientSeries(histogram as Histogram<T>, labels);
}

/** The public-API binding for a prom-client `Histogram` (about 0.4 us an observation). */
function promClientSeries<T extends string>(
  histogram: Histogram<T>,
  labels: Readonly<Record<T, string>>,
): HistogramSeries {
  let seen = zeroed.get(histogram);
  if (seen === undefined) {
    seen = new Set();
    zeroed.set(histogram, seen);
  }
  const key = JSON.stringify(labels);
  // `zero()` would wipe the counts of another store observing the same series: once is enough.
  if (!seen.has(key)) {
    histogram.zero({ ...labels });
    seen.add(key);
  }
  const child = histogram.labels({ ...labels });
  const observe = (value: number): void => child.observe(value);
  // `enableExemplars` is the constructor option, kept on the metric; without it `observe` takes
  // (labels, value) and an exemplar has nowhere to go.
  if ((histogram as { enableExemplars?: unknown }).enableExemplars !== true) {
    return { observe, observeWithExemplar: observe };
  }
  return {
    observe,
    observeWithExemplar: (value: number, exemplar: ExemplarLabelSet): void =>
      histogram.observe({
        labels: { ...labels },
        value,
        // The typings give exemplar labels the metric's label names; any names are accepted.
        exemplarLabels: { ...exemplar } as Partial<Record<T, string>>,
      }),
  };
}
