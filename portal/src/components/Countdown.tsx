import { duration } from '../lib/format';
import { useNow } from '../store/useNow';

export function Countdown({ until, label }: { until: string; label: string }) {
  const now = useNow(1000);
  const left = new Date(until).getTime() - now;
  const urgent = left < 5 * 60_000;
  return (
    <time className={`countdown ${urgent ? 'urgent' : ''}`} dateTime={until} aria-label={`${label} ${duration(left)}`}>
      {left > 0 ? `${duration(left)} left` : 'expiring'}
    </time>
  );
}
