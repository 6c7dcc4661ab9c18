from ganscale.config.load import config_from_dict, load_config, save_config, to_dict, to_yaml
from ganscale.config.schema import RunConfig

__all__ = ["RunConfig", "config_from_dict", "load_config", "save_config", "to_dict", "to_yaml"]
