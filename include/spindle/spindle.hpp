// spindle/spindle.hpp: the whole public API in one include.
#pragma once

#include "spindle/chan.hpp"
#include "spindle/error.hpp"
#include "spindle/fs.hpp"
#include "spindle/go.hpp"
#include "spindle/net.hpp"
#include "spindle/runtime.hpp"
#include "spindle/select.hpp"
#include "spindle/signal.hpp"
#include "spindle/sync.hpp"
#include "spindle/time.hpp"
