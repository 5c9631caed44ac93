import { useEffect, useMemo, useState } from 'react';

import { useProjects } from '../../store/useProjects';
import { useMonitoring } from '../../store/useMonitoring';
import { ActivityFeed } from './ActivityFeed';
import { CycleList } from './CycleList';
import { TestOutput } from './TestOutput';

export function MonitoringPage() {
  const { projects } = useProjects(60_000);
  const names = useMemo(() => (projects ?? []).map((p) => p.name), [projects]);
  const { state, fetchOutput } = useMonitoring(names);
  const cycles = Object.values(state.cycles).sort((a, b) => b.started_at.localeCompare(a.started_at));
  const [selected, setSelected] = useState<string | null>(null);
  const current = (selected && state.cycles[selected]) || cycles[0];

  // Opening a cycle fills in the output it had before this page saw it.
  useEffect(() => {
    if (current) fetchOutput(current.cycle_id);
  }, [current?.cycle_id, fetchOutput]); // eslint-disable-line react-hooks/exhaustive-deps

  return (
    <div className="page monitoring">
      <h1 className="page-title">Monitoring</h1>
      <div className="grid-mon">
        <CycleList cycles={cycles} selected={current?.cycle_id} onSelect={setSelected} />
        <TestOutput cycle={current} />
        <ActivityFeed activity={state.activity} />
      </div>
    </div>
  );
}
