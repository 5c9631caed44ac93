import { Panel } from '../../components/Panel';
import { Sparkline } from '../../components/Sparkline';
import { duration } from '../../lib/format';
import { useMetrics } from '../../store/useMetrics';

export function HealthCharts() {
  const samples = useMetrics();
  const last = samples.at(-1);
  const series = (pick: (s: (typeof samples)[number]) => number): number[] => samples.map(pick);
  return (
    <Panel
      title="System health"
      id="health"
      actions={<span className="muted small">{last ? `up ${duration(last.uptime * 1000)} · ${last.active_projects} projects · ${last.active_tasks} tasks` : 'waiting for metrics…'}</span>}
    >
      <div className="charts">
        <Sparkline label="CPU" values={series((s) => s.cpu_usage)} max={100} unit="%" />
        <Sparkline label="Memory" values={series((s) => s.memory_usage)} max={100} unit="%" />
        <Sparkline label="Disk" values={series((s) => s.disk_usage)} max={100} unit="%" />
        <Sparkline label="Connections" values={series((s) => s.active_connections)} format={(v) => String(Math.round(v))} />
        <Sparkline label="Error rate" values={series((s) => s.error_rate)} format={(v) => `${v.toFixed(1)}%`} />
      </div>
    </Panel>
  );
}
