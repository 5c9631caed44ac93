import { useState } from 'react';

import type { SystemMetricsEvent } from '@agent-portal/client';
import { useWebSocketEvent } from '@agent-portal/client/react';

const KEEP = 60; // five minutes at the default 5 s interval

/** The last samples of `system_metrics` on /monitoring, oldest first. */
export function useMetrics(): SystemMetricsEvent[] {
  const [samples, setSamples] = useState<SystemMetricsEvent[]>([]);
  useWebSocketEvent('/monitoring', 'system_metrics', (sample) =>
    setSamples((prev) => [...prev.slice(-(KEEP - 1)), sample]),
  );
  return samples;
}
