import { useEffect, useState } from 'react';

import { fetchProjects, type ProjectSummary } from '../lib/api';
import { useSession } from './session';

/** The projects this user may see (`GET /api/projects`), refreshed now and then for presence counts. */
export function useProjects(intervalMs = 15_000): { projects: ProjectSummary[] | null; error: string | null } {
  const { session } = useSession();
  const [projects, setProjects] = useState<ProjectSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let alive = true;
    const load = (): void => {
      fetchProjects(session.token)
        .then((list) => alive && (setProjects(list), setError(null)))
        .catch((err: Error) => alive && setError(err.message));
    };
    load();
    const id = window.setInterval(load, intervalMs);
    return () => {
      alive = false;
      window.clearInterval(id);
    };
  }, [session.token, intervalMs]);
  return { projects, error };
}
