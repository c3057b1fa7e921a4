#include "storepulse/common/status.hpp"
