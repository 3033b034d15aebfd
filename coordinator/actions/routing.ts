// Sends each node-local action where it runs: a pod on the node (an `image`, InteractiveShell)
// or the node's agent (host actions, Reboot).
import type { ActionDispatcher, NodeActionOutcome, NodeActionRequest } from './dispatcher.js';
import { runsAsPod } from './pod-job.js';

export class RoutingDispatcher implements ActionDispatcher {
  constructor(
    private readonly pods: ActionDispatcher,
    private readonly agents: ActionDispatcher,
  ) {}

  run(req: NodeActionRequest): Promise<NodeActionOutcome> {
    return (runsAsPod(req.action) ? this.pods : this.agents).run(req);
  }

  async forget(maintenanceUid: string): Promise<void> {
    await Promise.all([this.pods.forget?.(maintenanceUid), this.agents.forget?.(maintenanceUid)]);
  }

  detach(): void {
    this.pods.detach?.();
    this.agents.detach?.();
  }
}
