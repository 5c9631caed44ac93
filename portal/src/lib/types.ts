// Types of the wire the generated protocol leaves open (snapshot replies), plus re-exports.
export type * from '@agent-portal/client';
import type { Story, Task } from '@agent-portal/client';

export type WorkflowState =
  | 'IDLE'
  | 'BACKLOG_READY'
  | 'SPRINT_PLANNED'
  | 'SPRINT_ACTIVE'
  | 'SPRINT_PAUSED'
  | 'SPRINT_REVIEW'
  | 'BLOCKED';

export type TDDState = 'design' | 'test_red' | 'code_green' | 'refactor' | 'commit';

export interface Approval {
  id: string;
  project_name: string;
  task: Task;
  reason: string;
  created_at: string;
  timeout_at: string;
  retry_count: number;
}

export interface Sprint {
  id: string;
  goal: string;
  story_ids: string[];
  status: string;
  start_date?: string | null;
  end_date?: string | null;
}

export interface CycleSummary {
  cycle_id: string;
  story_id: string;
  current_state: TDDState;
  completed_tasks: number;
  total_tasks: number;
  overall_test_coverage: number;
  is_complete: boolean;
  started_at: string;
}

export interface Snapshot {
  project_name: string;
  active_users: string[];
  current_state: WorkflowState;
  orchestration_mode: string;
  paused: boolean;
  allowed_commands: string[];
  pending_approvals: Approval[];
  active_tasks: Task[];
  sprint: Sprint | null;
  backlog: Story[];
  active_tdd_cycles: CycleSummary[];
  last_activity: string | null;
}

export interface HistoryPage<M> {
  messages: M[];
  has_more: boolean;
  /** The threads opened on this page's messages (thread replies are not in the channel's pages). */
  threads?: { thread_id: string; parent_message_id: string; message_count: number; participants: string[] }[];
}

/** What each client event's ack carries in `data` (read from the server's handlers). */
export interface Replies {
  get_snapshot: Snapshot;
  get_history: HistoryPage<import('@agent-portal/client').MessageReceivedEvent>;
  send_message: { message_id: string; thread_id: string | null };
  resolve_approval: { success: boolean; message?: string; error?: string };
  get_config: { config_type: string; config: Record<string, import('../store/configTree').Json> };
  update_config: unknown;
  get_audit_log: { entries: import('@agent-portal/client').UserActionEvent[]; has_more: boolean };
  get_test_output: { lines: import('@agent-portal/client').TestOutputEvent[]; has_more: boolean };
}
export type Reply<E> = E extends keyof Replies ? Replies[E] : unknown;
