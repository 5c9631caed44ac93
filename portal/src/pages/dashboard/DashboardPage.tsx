import { Panel } from '../../components/Panel';
import { useProjects } from '../../store/useProjects';
import { HealthCharts } from './HealthCharts';
import { ProjectCard } from './ProjectCard';

export function DashboardPage() {
  const { projects, error } = useProjects();
  return (
    <div className="page dashboard">
      <h1 className="page-title">Dashboard</h1>
      <Panel title="Projects" id="projects">
        {error && <p className="error">{error}</p>}
        {projects === null && !error && <p className="muted">Loading projects…</p>}
        {projects?.length === 0 && <p className="muted">No projects yet. Add one with <code>agent-portal project add NAME</code>.</p>}
        <ul className="cards">
          {projects?.map((p) => (
            <li key={p.name}>
              <ProjectCard summary={p} />
            </li>
          ))}
        </ul>
      </Panel>
      <HealthCharts />
    </div>
  );
}
