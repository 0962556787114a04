"""Simulated devices for every catalog product, built on the device SDK (:mod:`tosplus.sdk`).

* :mod:`tosplus.sim.behaviours`: one simulator class per product (``BEHAVIOURS``, ``create_device``), from
  :mod:`tosplus.sim.device` (what they share), :mod:`tosplus.sim.home_devices` and
  :mod:`tosplus.sim.city_devices`;
* :mod:`tosplus.sim.home`: ``run_home`` / ``run_city``, a home and a city block created through the hub API;
* :mod:`tosplus.sim.fleet`: ``run_fleet`` / ``run_devices``, N devices of one product;
* :mod:`tosplus.sim.provision`: the hub API calls and the credential state file;
* :mod:`tosplus.sim.cli`: the ``tosplus simulate`` commands.
"""
