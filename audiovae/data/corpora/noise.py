"""Real recorded noise from Debian packages, gathered into a noise folder (``<type>/<files>``) for the noisy corpus.

Game and simulator data packages ship field recordings (rain, wind, rivers, birds, crowds, engines, fire, machines),
most from freesound.org, Wikimedia or the games' own recordists, under licences that allow training a model and
redistributing it (CC0, CC-BY, CC-BY-SA, GPL-2+). :data:`CATALOGUE` names every file used, its noise type, its
package and its licence; nothing is downloaded here. The files are read from a root folder holding the packages'
trees: ``/`` where the packages are installed, or a folder into which ``recipes/denoise/fetch_noise.sh`` unpacked
them (``apt-get download`` + ``dpkg-deb -x``; 0ad's sounds are unzipped from its ``public.zip``).

Chosen and checked (spectral flatness, tonality, near-silent share, duplicates across packages by cross-correlation)
from 16 candidate packages; music, speech, tones and signals were left out. Each type is written as mono FLAC at
``sample_rate``, one file per recording, with ``sources.csv`` (type, package, path, licence, seconds) beside.
"""

from __future__ import annotations

import csv
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import audio
from ...errors import AudiovaeError
from ...fileio import atomic_path


@dataclass(frozen=True)
class NoiseSource:
    """Files of one package for one noise type: ``patterns`` are globs under ``base`` (below the root)."""

    noise: str
    package: str
    base: str
    patterns: tuple[str, ...]
    licence: str


_0AD = "usr/share/games/0ad/mods/public/audio"
_RE = "usr/share/games/redeclipse/data/sounds/ambience"
_MG = "usr/share/games/megaglest/tilesets"
_STK = "usr/share/games/supertuxkart/data"
_FG = "usr/share/games/flightgear"
_MT = "usr/share/games/minetest/games/minetest_game/mods"
_WN = "usr/share/games/wesnoth/1.16/data/core/sounds/ambient"
_WL = "usr/share/games/widelands/data/sound"
_LC = "usr/share/games/lincity-ng/sounds"
_0AD_LICENCE = "CC-BY-SA-3.0 (Wildfire Games)"

CATALOGUE: tuple[NoiseSource, ...] = (
    # rain
    NoiseSource("rain", "0ad-data", _0AD, ("ambient/weather/rain_11.ogg", "ambient/weather/rain_12.ogg"),
                _0AD_LICENCE),
    NoiseSource("rain", "megaglest-data", _MG, ("evergreen/sounds/rain.ogg", "autumn/sounds/rain.ogg",
                                                "desert2/sounds/rain.wav"), "CC-BY-SA-3.0"),
    NoiseSource("rain", "redeclipse-data", _RE, ("morph/rain.ogg", "morph/stormrain.ogg"), "CC-BY-3.0"),
    NoiseSource("rain", "flightgear-data-base", _FG, ("Sounds/rain.wav", "Sounds/rain-windshield.wav"), "GPL-2+"),
    # wind
    NoiseSource("wind", "0ad-data", _0AD, ("ambient/weather/wind_11.ogg", "ambient/weather/windstorm_11.ogg",
                                           "ambient/weather/snowstorm_11.ogg", "ambient/weather/windleaves_1[01].ogg"),
                _0AD_LICENCE),
    NoiseSource("wind", "redeclipse-data", _RE, ("wind.ogg", "blowwind.ogg", "wastewind.ogg"),
                "CC-BY-SA-3.0 (freesound: Batuhan Bozkurt and others)"),
    NoiseSource("wind", "redeclipse-data", _RE, ("morph/stormwind.ogg", "morph/wind[12].ogg"), "CC-BY-3.0"),
    NoiseSource("wind", "megaglest-data", _MG, ("winter/sounds/wind.ogg",), "CC-BY-SA-3.0"),
    NoiseSource("wind", "flightgear-data-base", _FG, ("Sounds/wind1.wav", "Sounds/wind.wav"), "GPL-2+"),
    # water
    NoiseSource("water", "0ad-data", _0AD, ("ambient/water/river_*_21.ogg", "ambient/water/waterfall_31.ogg",
                                            "ambient/water/wave_21.ogg", "ambient/water/wavecrash_21.ogg",
                                            "ambient/water/waverocky_21.ogg"), _0AD_LICENCE),
    NoiseSource("water", "redeclipse-data", _RE, ("creek.ogg", "river.ogg", "water.ogg", "waterfall.ogg",
                                                  "waterfall[23].ogg", "waterfall_*.ogg"),
                "CC-BY-SA-3.0 (freesound: Acclivity, Corsica_S, RHumphries, ignotus)"),
    NoiseSource("water", "supertuxkart-data", _STK, ("sfx/river_loop.ogg", "sfx/waterfall_loop_2.ogg"), "CC0"),
    NoiseSource("water", "flightgear-data-base", _FG, ("Aircraft/c172p/Sounds/water-fast.wav",
                                                       "Aircraft/c172p/Sounds/water-still.wav"), "GPL-2+"),
    NoiseSource("water", "minetest-data", _MT, ("env_sounds/sounds/env_sounds_water.[1-4].ogg",),
                "CC0 (freesound: Halion)"),
    # nature: birds, insects, forest by day and night
    NoiseSource("nature", "0ad-data", _0AD, ("ambient/dayscape/day_temperate_1[1-4].ogg",
                                             "ambient/dayscape/day_temperate_gen_01.ogg",
                                             "ambient/dayscape/day_tropical_1[01].ogg"), _0AD_LICENCE),
    NoiseSource("nature", "redeclipse-data", _RE, ("forest[1-3].ogg", "cycadas.ogg"),
                "CC-BY-3.0 (freesound: dobroide)"),
    NoiseSource("nature", "redeclipse-data", _RE, ("nightcrickets.ogg",), "CC-BY-SA-3.0 (freesound: RHumphries)"),
    NoiseSource("nature", "megaglest-data", _MG, ("evergreen/sounds/day.ogg", "evergreen/sounds/night.ogg",
                                                  "dark_forest/sounds/day.ogg", "dark_forest/sounds/night.ogg",
                                                  "fernland/sounds/day.ogg", "fernland/sounds/night.ogg",
                                                  "mediterran/sounds/desertday.ogg", "mediterran/sounds/night.ogg",
                                                  "spring/sounds/day.ogg", "autumn/sounds/nightime.ogg",
                                                  "autumn/sounds/sunny_day.ogg", "desert2/sounds/day.ogg",
                                                  "desert2/sounds/night.ogg"), "CC-BY-SA-3.0"),
    NoiseSource("nature", "supertuxkart-data", _STK, ("sfx/exotic-birds.ogg", "sfx/exotic-birds_2.ogg"), "CC0"),
    NoiseSource("nature", "wesnoth-1.16-data", _WN, ("birds[1-3].ogg", "night.ogg"), "GPL-2+"),
    # crowds: a restaurant, applause, markets, a port, a tavern, a stadium
    NoiseSource("crowd", "supertuxkart-data", _STK, ("sfx/lenautile_restaurant.ogg",), "CC0 (freesound: Alcappuccino)"),
    NoiseSource("crowd", "supertuxkart-data", _STK, ("sfx/gp_end.ogg",), "CC-BY-3.0 (soundbible: Mike Koenig)"),
    NoiseSource("crowd", "0ad-data", _0AD, ("ambient/building/amb_farm_*.ogg", "ambient/building/amb_port_*.ogg",
                                            "ambient/building/amb_trade_*.ogg"), _0AD_LICENCE),
    NoiseSource("crowd", "widelands-data", _WL, ("barbarians/taverns/inn_01.ogg",), "GPL-2+"),
    NoiseSource("crowd", "lincity-ng-data", _LC, ("SportsCroud[1-3].wav",), "GPL-2+ or CC-BY-SA-2.0"),
    # thunder
    NoiseSource("thunder", "0ad-data", _0AD, ("ambient/weather/thunder_1[01].ogg",), _0AD_LICENCE),
    NoiseSource("thunder", "flightgear-data-base", _FG, ("Sounds/thunder[1-3].wav",), "GPL-2+"),
    # vehicles: traffic, a steam locomotive, a jet, propeller and piston engines, tyres
    NoiseSource("vehicle", "redeclipse-data", _RE, ("distant_cars.ogg",), "CC-BY-SA-3.0 (freesound: fresco)"),
    NoiseSource("vehicle", "supertuxkart-data", _STK, ("library/stklib_steamLocomotive_a/steamLocomotive.ogg",
                                                       "tracks/black_forest/steamLocomotive.ogg"),
                "CC-BY-SA-3.0 (Daniel Simion)"),
    NoiseSource("vehicle", "supertuxkart-data", _STK, ("sfx/airplane_jetEngine.ogg",),
                "CC-BY-SA-3.0 (Wikimedia: Fritz Schlueter)"),
    NoiseSource("vehicle", "flightgear-data-base", _FG, ("Aircraft/c172p/Sounds/engine-idle.wav",
                                                         "Aircraft/c172p/Sounds/engine.wav", "Sounds/prop.wav",
                                                         "Sounds/exhaust_loop.wav", "Sounds/turbojet_fan.wav",
                                                         "Aircraft/c172p/Sounds/tires-rolling-*.wav"), "GPL-2+"),
    NoiseSource("vehicle", "lincity-ng-data", _LC, ("TraficHigh[13].wav",), "GPL-2+ or CC-BY-SA-2.0"),
    # fire
    NoiseSource("fire", "0ad-data", _0AD, ("attack/fire/c_1[1-9].ogg", "attack/fire/sz1[1-5].ogg",
                                           "attack/fire/sp_1[1-8].ogg"), _0AD_LICENCE),
    NoiseSource("fire", "wesnoth-1.16-data", _WN, ("campfire.ogg",), "GPL-2+"),
    NoiseSource("fire", "minetest-data", _MT, ("fire/sounds/fire_fire.[1-3].ogg", "fire/sounds/fire_large.ogg",
                                               "fire/sounds/fire_small.ogg"),
                "CC-BY-3.0 (freesound: dobroide, Dynamicell)"),
    # machinery: a mill, a loom, saws, a furnace, a fan, a motor
    NoiseSource("machinery", "widelands-data", _WL, ("mill/mill_turning_0[01].ogg", "mill/weaving.ogg",
                                                     "atlanteans/saw/sawing_0[01].ogg",
                                                     "atlanteans/saw/benchsaw_0[0-2].ogg", "metal/furnace.ogg"),
                "GPL-2+"),
    NoiseSource("machinery", "flightgear-data-base", _FG, ("Sounds/fan.wav", "Aircraft/c172p/Sounds/flaps-motor.wav"),
                "GPL-2+"),
)
_MTD = f"{_MT}/default/sounds"
# Short recorded events (a step, a door, keys, glass), scattered into scenes by `event_scene` (the "clatter" type:
# a house, an office, a kitchen); not in the catalogue's default types, so the bundled recipe's corpus is unchanged.
# Licences per file from the mods' README.txt (Debian's copyright file gives only the games' blanket licence).
EVENTS: tuple[NoiseSource, ...] = (
    NoiseSource("clatter", "minetest-data", _MTD, ("default_dug_node*.ogg", "default_place_node.*.ogg",
                                                   "default_place_node_hard*.ogg", "default_glass_footstep.ogg",
                                                   "default_grass_footstep*.ogg", "default_gravel_footstep*.ogg",
                                                   "default_wood_footstep*.ogg", "default_dirt_footstep*.ogg"),
                "CC-BY-SA-3.0 (freesound: Mito551)"),
    NoiseSource("clatter", "minetest-data", _MTD, ("default_break_glass*.ogg",),
                "CC-BY-3.0 (freesound: cmusounddesign, Tomlija, lsprice)"),
    NoiseSource("clatter", "minetest-data", _MTD, ("default_hard_footstep*.ogg",), "CC-BY-3.0 (freesound: Erdie)"),
    NoiseSource("clatter", "minetest-data", _MTD, ("default_ice_footstep*.ogg",),
                "CC-BY-3.0 (freesound: InspectorJ)"),
    NoiseSource("clatter", "minetest-data", _MTD, ("default_water_footstep*.ogg",), "CC-BY-3.0 (freesound: AGFX)"),
    NoiseSource("clatter", "minetest-data", _MTD, ("default_chest_*.ogg",),
                "CC-BY-3.0 and CC0 (freesound: Percy Duke, kingsamas; Sevin7; mixed by sofar)"),
    NoiseSource("clatter", "minetest-data", _MTD, ("default_metal_footstep*.ogg", "default_place_node_metal*.ogg",
                                                   "default_snow_footstep*.ogg", "default_sand_footstep*.ogg"),
                "CC0 (freesound: mypantsfelldown, Ryding, worthahep88; opengameart: Ogrebane)"),
    NoiseSource("clatter", "minetest-data", f"{_MT}/doors/sounds", ("doors_door_*.ogg", "doors_steel_door_*.ogg",
                                                                   "doors_fencegate_*.ogg"),
                "CC-BY-3.0 (freesound: CGEffex, bennstir, HazMattt, BarkersPinhead, rivernile7); CC0 (mhtaylor67)"),
    NoiseSource("clatter", "minetest-data", f"{_MT}/doors/sounds", ("doors_glass_door_*.ogg",),
                "CC0 (freesound: SkeetMasterFunk69)"),
    NoiseSource("clatter", "redeclipse-data", "usr/share/games/redeclipse/data/sounds/player",
                ("footstep*.ogg", "concstep*.ogg", "land*.ogg"), "CC-BY-SA-3.0+"),
    NoiseSource("clatter", "flightgear-data-base", _FG, ("Sounds/door_close.wav", "Aircraft/c172p/Sounds/keys*.wav",
                                                         "Aircraft/c172p/Sounds/door-*.wav"), "GPL-2+"),
)
NOISE_TYPES = tuple(dict.fromkeys(s.noise for s in CATALOGUE))
PACKAGES = tuple(sorted({s.package for s in CATALOGUE}))  # the events' packages are among them
# recorded types the bundled denoiser never hears in training: its headline is measured on them
TEST_ONLY = ("vehicle", "fire", "machinery")


def event_scene(events: list[np.ndarray], seconds: float, sample_rate: int, rng: np.random.Generator,
                mean_gap: float = 0.5) -> np.ndarray:
    """``seconds`` of events (mono clips) one after another at random: each starts a gap after the previous one
    started (exponential, mean ``mean_gap`` s, at least 50 ms, so events may overlap) at a gain of -20…0 dB, the
    whole kept within full scale. Between events the scene is silent, as a quiet room is: the noisy corpus mixes only
    audible crops of it."""
    out = np.zeros(int(seconds * sample_rate), np.float32)
    t = float(rng.uniform(0.0, mean_gap))
    while (start := int(t * sample_rate)) < out.size:
        clip = events[int(rng.integers(len(events)))]
        end = min(out.size, start + clip.size)
        out[start:end] += 10 ** (rng.uniform(-20.0, 0.0) / 20) * clip[: end - start]
        t += max(0.05, float(rng.exponential(mean_gap)))
    return out / max(1.0, float(np.abs(out).max()))


def find_sources(root: str | os.PathLike[str], catalogue: tuple[NoiseSource, ...] = CATALOGUE
                 ) -> list[tuple[NoiseSource, Path]]:
    """Every file of ``catalogue`` found under ``root``, in catalogue order; raises naming the packages with none (a
    package whose release moved a few files still counts: ``sources.csv`` says what was used)."""
    root = Path(root)
    found = []
    for source in catalogue:
        base = root / source.base
        files = sorted({p for pattern in source.patterns for p in base.glob(pattern) if p.is_file()})
        found += [(source, p) for p in files]
    missing = {s.package for s in catalogue} - {source.package for source, _ in found}
    if missing:
        raise AudiovaeError(f"{root}: no catalogued recordings of {', '.join(sorted(missing))}; unpack them with "
                            "`bash recipes/denoise/fetch_noise.sh DIR` (or apt-get install them and use --root /)")
    return found


SCENE_SECONDS = 30.0


def build_noise_folder(out_dir: str | os.PathLike[str], root: str | os.PathLike[str] = "/",
                       sample_rate: int = 22050, progress: bool = True, clatter_scenes: int = 0,
                       seed: int = 0) -> dict[str, float]:
    """Write every catalogued recording under ``root`` as ``out_dir/<type>/<package>__<name>.flac`` (mono,
    ``sample_rate``) and ``out_dir/sources.csv``; returns seconds per type. ``clatter_scenes`` > 0 also writes that
    many scenes of :data:`EVENTS` (``clatter/scene_NN.flac``, 30 s each, :func:`event_scene`), every event file
    listed in ``sources.csv``."""
    from tqdm.auto import tqdm

    from ...progress import bar_off

    t0 = time.perf_counter()
    out = Path(out_dir)
    sources = find_sources(root)
    events = find_sources(root, EVENTS) if clatter_scenes > 0 else []
    seconds: dict[str, float] = {}
    rows = []
    clips = []
    for i, (source, path) in enumerate(tqdm(sources + events, desc="noise", unit="file", disable=bar_off(progress))):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a few recordings touch full scale; they are noise, kept as made
                wave = audio.load(path, sample_rate)[0].numpy()
        except audio.AudioError as e:
            raise AudiovaeError(f"{path}: {e}") from None
        peak = np.abs(wave).max(initial=0.0)
        event = i >= len(sources)
        if peak == 0 or (event and peak < 1e-3):  # silent; an all but silent event would be raised to full scale
            continue
        rel = path.relative_to(Path(root) / source.base)
        secs = wave.size / sample_rate
        rows.append([source.noise, source.package, str(Path(source.base) / rel), source.licence, f"{secs:.2f}"])
        if event:
            clips.append(wave / peak)  # at full scale: the scene draws its gain
            continue
        name = f"{source.package}__{'_'.join(rel.with_suffix('').parts)}.flac"
        (out / source.noise).mkdir(parents=True, exist_ok=True)
        audio.save(out / source.noise / name, wave, sample_rate)
        seconds[source.noise] = seconds.get(source.noise, 0.0) + secs
    if clatter_scenes > 0:
        if not clips:
            raise AudiovaeError(f"{root}: the event recordings for --clatter are all silent")
        (out / "clatter").mkdir(parents=True, exist_ok=True)
        for n in range(clatter_scenes):
            scene = event_scene(clips, SCENE_SECONDS, sample_rate, np.random.default_rng([seed, n]))
            audio.save(out / "clatter" / f"scene_{n:02d}.flac", scene, sample_rate)
        seconds["clatter"] = clatter_scenes * SCENE_SECONDS
    with atomic_path(out / "sources.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["type", "package", "path", "licence", "seconds"])
        writer.writerows(rows)
    if progress:
        print(f"{len(rows)} recordings, {sum(seconds.values()) / 60:.1f} min in {time.perf_counter() - t0:.0f} s")
    return seconds
