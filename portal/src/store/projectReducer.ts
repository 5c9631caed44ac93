// A project's live state: the snapshot, then every project event folded in (pure, no I/O).
import type {
  ApprovalRequestEvent,
  ApprovalResolvedEvent,
  BacklogUpdatedEvent,
  SprintProgressEvent,
  StateChangeEvent,
  Story,
  TaskUpdateEvent,
  TDDCycleStartedEvent,
  TDDStateChangeEvent,
  UserJoinedEvent,
  UserLeftEvent,
} from '@agent-portal/client';

import type { Approval, CycleSummary, Snapshot, Sprint, WorkflowState } from '../lib/types';

export interface TaskView {
  id: string;
  agent_type: string;
  task_type: string;
  status: string;
  progress: number;
  command?: string;
  story_id?: string | null;
  error?: string | null;
  updated: number;
}

export interface ProjectLive {
  loaded: boolean;
  state: WorkflowState;
  allowed: string[];
  approvals: Approval[];
  tasks: Record<string, TaskView>;
  sprint: Sprint | null;
  progress: SprintProgressEvent | null;
  backlog: Story[];
  cycles: Record<string, CycleSummary>;
  users: string[];
  mode: string;
}

export const emptyProject: ProjectLive = {
  loaded: false,
  state: 'IDLE',
  allowed: [],
  approvals: [],
  tasks: {},
  sprint: null,
  progress: null,
  backlog: [],
  cycles: {},
  users: [],
  mode: '',
};

export type ProjectAction =
  | { type: 'snapshot'; snapshot: Snapshot }
  | { type: 'state_change'; event: StateChangeEvent }
  | { type: 'task_update'; event: TaskUpdateEvent }
  | { type: 'approval_request'; event: ApprovalRequestEvent }
  | { type: 'approval_resolved'; event: ApprovalResolvedEvent }
  | { type: 'sprint_progress'; event: SprintProgressEvent }
  | { type: 'backlog_updated'; event: BacklogUpdatedEvent }
  | { type: 'tdd_cycle_started'; event: TDDCycleStartedEvent }
  | { type: 'tdd_state_change'; event: TDDStateChangeEvent }
  | { type: 'user_joined'; event: UserJoinedEvent }
  | { type: 'user_left'; event: UserLeftEvent };

const FINISHED = new Set(['completed', 'failed', 'cancelled']);
const KEEP_FINISHED = 8;

function pruneTasks(tasks: Record<string, TaskView>): Record<string, TaskView> {
  const finished = Object.values(tasks)
    .filter((t) => FINISHED.has(t.status))
    .sort((a, b) => b.updated - a.updated);
  if (finished.length <= KEEP_FINISHED) return tasks;
  const drop = new Set(finished.slice(KEEP_FINISHED).map((t) => t.id));
  return Object.fromEntries(Object.entries(tasks).filter(([id]) => !drop.has(id)));
}

function moveStory(backlog: Story[], event: BacklogUpdatedEvent): Story[] {
  const without = backlog.filter((s) => s.id !== event.story_id);
  const existing = backlog.find((s) => s.id === event.story_id);
  switch (event.change_type) {
    case 'removed':
      return without;
    case 'updated':
      return event.story ? backlog.map((s) => (s.id === event.story_id ? event.story! : s)) : backlog;
    case 'added':
    case 'reordered': {
      const story = event.story ?? existing;
      if (!story) return backlog;
      const at = Math.min(event.new_position ?? without.length, without.length);
      return [...without.slice(0, at), story, ...without.slice(at)];
    }
  }
}

export function projectReducer(live: ProjectLive, action: ProjectAction): ProjectLive {
  switch (action.type) {
    case 'snapshot': {
      const s = action.snapshot;
      const tasks: Record<string, TaskView> = {};
      for (const t of s.active_tasks) {
        tasks[t.id] = {
          id: t.id,
          agent_type: t.agent_type,
          task_type: t.task_type ?? t.command,
          status: t.status ?? 'pending',
          progress: t.progress ?? 0,
          command: t.command,
          story_id: t.story_id,
          error: t.error,
          updated: Date.now(),
        };
      }
      // Finished tasks the page saw live stay visible; the snapshot only knows active ones.
      for (const t of Object.values(live.tasks)) if (FINISHED.has(t.status) && !tasks[t.id]) tasks[t.id] = t;
      return {
        loaded: true,
        state: s.current_state,
        allowed: s.allowed_commands,
        approvals: s.pending_approvals,
        tasks,
        sprint: s.sprint,
        progress: s.sprint && live.progress?.sprint_id === s.sprint.id ? live.progress : null,
        backlog: s.backlog,
        cycles: Object.fromEntries(s.active_tdd_cycles.map((c) => [c.cycle_id, c])),
        users: s.active_users,
        mode: s.orchestration_mode,
      };
    }
    case 'state_change':
      return { ...live, state: action.event.new_state };
    case 'task_update': {
      const e = action.event;
      const prev = live.tasks[e.task_id];
      const task: TaskView = {
        ...prev,
        id: e.task_id,
        agent_type: e.agent_type,
        task_type: e.task_type,
        status: e.status,
        progress: Math.max(e.progress, prev && prev.status === e.status ? prev.progress : 0),
        error: e.error ?? null,
        updated: Date.now(),
      };
      return { ...live, tasks: pruneTasks({ ...live.tasks, [e.task_id]: task }) };
    }
    case 'approval_request': {
      const e = action.event;
      const approval: Approval = {
        id: e.request_id,
        project_name: e.project_name,
        task: e.task,
        reason: e.reason,
        created_at: e.created_at,
        timeout_at: e.timeout_at,
        retry_count: e.retry_count,
      };
      return { ...live, approvals: [...live.approvals.filter((a) => a.id !== e.request_id), approval] };
    }
    case 'approval_resolved':
      return { ...live, approvals: live.approvals.filter((a) => a.id !== action.event.request_id) };
    case 'sprint_progress':
      return { ...live, progress: action.event };
    case 'backlog_updated':
      return { ...live, backlog: moveStory(live.backlog, action.event) };
    case 'tdd_cycle_started': {
      const e = action.event;
      const cycle: CycleSummary = {
        cycle_id: e.cycle_id,
        story_id: e.story_id,
        current_state: 'design',
        completed_tasks: 0,
        total_tasks: 5,
        overall_test_coverage: 0,
        is_complete: false,
        started_at: e.timestamp,
      };
      return { ...live, cycles: { ...live.cycles, [e.cycle_id]: cycle } };
    }
    case 'tdd_state_change': {
      const e = action.event;
      const prev = live.cycles[e.cycle_id];
      if (!prev) return live;
      const cycle: CycleSummary = {
        ...prev,
        current_state: e.new_state,
        completed_tasks: Math.min(prev.total_tasks, prev.completed_tasks + 1),
        overall_test_coverage: e.code_metrics?.coverage ?? prev.overall_test_coverage,
      };
      return { ...live, cycles: { ...live.cycles, [e.cycle_id]: cycle } };
    }
    case 'user_joined':
      return live.users.includes(action.event.user_id)
        ? live
        : { ...live, users: [...live.users, action.event.user_id] };
    case 'user_left':
      return { ...live, users: live.users.filter((u) => u !== action.event.user_id) };
  }
}
