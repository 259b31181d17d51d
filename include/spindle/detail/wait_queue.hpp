// spindle/detail/wait_queue.hpp: the FIFO of parked waiters inside each sync
// primitive (sync.hpp). Only its two ends are visible here; the nodes, which
// live on the parked callers' stacks, and every operation on the queue are in
// lib/sync/wait_list.hpp.
#pragma once

namespace spindle::detail {

struct wait_node;

// wait_queue: guarded by the owning primitive's lock.
struct wait_queue {
  wait_node* head = nullptr;
  wait_node* tail = nullptr;
};

}  // namespace spindle::detail
