interface Props {
  values: number[];
  max?: number;
  label: string;
  unit?: string;
  format?: (v: number) => string;
}

const W = 160;
const H = 40;

/** A small line chart in SVG: the last value large, the history as a line. */
export function Sparkline({ values, max, label, unit = '', format }: Props) {
  const top = max ?? Math.max(1, ...values) * 1.2;
  // One sample is a flat line until the next arrives.
  if (values.length === 1) values = [values[0]!, values[0]!];
  const step = values.length > 1 ? W / (values.length - 1) : W;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(H - (Math.min(v, top) / top) * H).toFixed(1)}`);
  const last = values.at(-1);
  const shown = last === undefined ? '—' : format ? format(last) : `${last.toFixed(1)}${unit}`;
  return (
    <figure className="spark" aria-label={`${label}: ${shown}`} data-metric={label}>
      <figcaption>
        <span className="spark-label">{label}</span>
        <strong className="spark-value">{shown}</strong>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-hidden="true">
        {values.length > 1 && (
          <>
            <polygon points={`0,${H} ${points.join(' ')} ${((values.length - 1) * step).toFixed(1)},${H}`} className="spark-area" />
            <polyline points={points.join(' ')} className="spark-line" />
          </>
        )}
      </svg>
    </figure>
  );
}
