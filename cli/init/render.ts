import { Document } from 'yaml';
import type { NodeMaintenance } from '../../shared/api/index.js';

const HEADER = [
  ' Written by `noma init`. Review it, then apply it to the cluster it is meant for:',
  '   kubectl --context <cluster> apply -f <this file>',
].join('\n');

// Shown under an empty `actions` list, so the hand-edited template says what it can hold.
const ACTION_EXAMPLES = `\
    # Ordered steps, run on every selected node after it is cordoned, tainted and drained.
    # Without Complete the nodes stay cordoned at the end. For example:
    # - type: Script
    #   script: { script: "apt-get install -y nvidia-driver-570", image: tools:latest }
    # - type: Run
    #   run: { command: [nvidia-smi, -q] }
    # - type: Reboot
    # - type: Notify
    #   notify: { channel: "#gpu-ops", message: "driver upgraded" }
    # - type: Complete          # uncordon: return the nodes to service
    # - type: DeleteNode        # or remove them from the cluster (must be last)
`;

/** The manifest as YAML, with a header that says how to apply it. */
export function renderManifest(manifest: NodeMaintenance): string {
  const doc = new Document(manifest);
  doc.commentBefore = HEADER;
  let text = doc.toString({ lineWidth: 0, singleQuote: true });
  // `actions` is the last key of the document, so the examples can follow it directly.
  if (manifest.spec.actions.length === 0) text += ACTION_EXAMPLES;
  return text;
}
