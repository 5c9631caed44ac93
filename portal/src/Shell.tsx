import type { Namespace } from '@agent-portal/client';
import { chatNamespace, projectNamespace } from '@agent-portal/client';

import { StatusBar } from './components/StatusBar';
import { can } from './lib/auth';
import { href, useRoute, type Route } from './lib/router';
import { AdminPage } from './pages/admin/AdminPage';
import { ChatPage } from './pages/chat/ChatPage';
import { DashboardPage } from './pages/dashboard/DashboardPage';
import { MonitoringPage } from './pages/monitoring/MonitoringPage';
import { ProjectPage } from './pages/project/ProjectPage';
import { useSession } from './store/session';

function namespacesOf(route: Route): Namespace[] {
  switch (route.page) {
    case 'dashboard':
      return ['/monitoring'];
    case 'project':
      return [projectNamespace(route.project)];
    case 'chat':
      return [chatNamespace(route.project), projectNamespace(route.project)];
    case 'monitoring':
      return ['/monitoring'];
    case 'admin':
      return ['/admin'];
  }
}

export function Shell() {
  const route = useRoute();
  const { session, logout } = useSession();
  const isAdmin = can(session, 'admin');
  const namespaces = route.page === 'admin' && !isAdmin ? [] : namespacesOf(route);
  const current = (page: Route['page']): 'page' | undefined => (route.page === page ? 'page' : undefined);

  return (
    <div className="app">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <a className="brand" href={href({ page: 'dashboard' })}>
          agent-portal
        </a>
        <nav aria-label="Main">
          <a href={href({ page: 'dashboard' })} aria-current={current('dashboard')}>
            Dashboard
          </a>
          <a href={href({ page: 'monitoring' })} aria-current={current('monitoring')}>
            Monitoring
          </a>
          {isAdmin && (
            <a href={href({ page: 'admin' })} aria-current={current('admin')}>
              Admin
            </a>
          )}
        </nav>
        <StatusBar namespaces={namespaces} />
        <div className="user">
          <span className="user-name" data-testid="current-user">
            {session.userId}
          </span>
          <span className="role">{session.role}</span>
          <button type="button" className="link-button" onClick={() => logout()}>
            Log out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} isAdmin={isAdmin} />
      </main>
    </div>
  );
}

function Page({ route, isAdmin }: { route: Route; isAdmin: boolean }) {
  switch (route.page) {
    case 'dashboard':
      return <DashboardPage />;
    case 'project':
      return <ProjectPage key={route.project} project={route.project} />;
    case 'chat':
      return <ChatPage key={route.project} project={route.project} />;
    case 'monitoring':
      return <MonitoringPage />;
    case 'admin':
      return isAdmin ? (
        <AdminPage />
      ) : (
        <section className="denied" role="alert">
          <h1>Admins only</h1>
          <p>The admin page needs the admin role. Ask an administrator if you need access.</p>
          <a href={href({ page: 'dashboard' })}>Back to the dashboard</a>
        </section>
      );
  }
}
