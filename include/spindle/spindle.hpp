// spindle/spindle.hpp: the whole public API in one include.
#pragma once

#include "spindle/error.hpp"
#include "spindle/go.hpp"
#include "spindle/runtime.hpp"
