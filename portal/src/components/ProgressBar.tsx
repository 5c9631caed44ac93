interface Props {
  value: number;
  max?: number;
  label: string;
  tone?: 'ok' | 'bad' | 'info';
}

/** An accessible progress bar: the numbers are read out, the bar is decoration. */
export function ProgressBar({ value, max = 100, label, tone = 'info' }: Props) {
  const pct = max > 0 ? Math.max(0, Math.min(100, (value / max) * 100)) : 0;
  return (
    <div
      className={`progress progress-${tone}`}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={max}
      aria-valuenow={value}
    >
      <div className="progress-fill" style={{ width: `${pct}%` }} />
    </div>
  );
}
