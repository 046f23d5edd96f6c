import type { LabelRecord } from '../../contracts/label-record.js';

export type ItemState = 'unlabelled' | 'awaiting-verification' | 'approved' | 'rejected';

/** Where an image stands, read from its latest record (see the lifecycle in types.ts). */
export function itemState(r: Pick<LabelRecord, 'status' | 'labeling_job'>): ItemState {
  if (r.status === 'APPROVED') return 'approved';
  if (r.status === 'REJECTED') return 'rejected';
  return r.labeling_job ? 'awaiting-verification' : 'unlabelled';
}
