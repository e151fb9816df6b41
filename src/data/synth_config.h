/* synth_config — the SYNTH kind of cb_config: the synthetic generator's
 * settings (cb_synth_config, dataset.h) behind keys (config.h). */
#ifndef CB_SYNTH_CONFIG_H
#define CB_SYNTH_CONFIG_H

#include "base/config.h"
#include "data/dataset.h"

extern const cb_config_table cb_synth_config_table;

#endif
