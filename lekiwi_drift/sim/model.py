"""The simulated LeKiwi and its little shop, written as MJCF.

Robot: a round base (radius 0.12 m) on a planar x/y/yaw joint chain driven by velocity actuators (the
three omni wheels are drawn, not simulated: an omni base realises any body velocity, so commanding the
body velocity directly keeps the physics cheap and exact). On it an SO-101-sized arm whose joints carry
LeRobot's LeKiwi names, and two parallel fingers.

Joint zero ("0 deg on every joint", all arm joints rotate about axes that make positive = forward/down):
  shoulder_pan    0 = arm points straight ahead along the base's x axis; + = turns left (CCW from above)
  shoulder_lift   0 = upper arm vertical; + = tilts forward
  elbow_flex      0 = forearm at a right angle to the upper arm (horizontal when the upper arm is up);
                  + = forearm bends down
  wrist_flex      0 = gripper in line with the forearm; + = gripper pitches down
  wrist_roll      0 = fingers open sideways (left/right) when the gripper points ahead
  gripper         0 = fingers touching (closed) .. 100 = 9 cm apart (open), linear in finger travel
So the all-zero pose is the SO-101's familiar "L": upper arm up, forearm and gripper level, pointing ahead.

Collision bits: the floor and static scenery use bit 1, the base bit 2, the arm bit 4 (it collides with
items, shelf and floor but not with itself or the base, like the real arm's clearance). Items use 1|2 so
they touch everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """Dimensions (m) shared by the model, the scene sampler and the expert's inverse kinematics."""

    base_radius: float = 0.12
    base_top: float = 0.105
    arm_mount_x: float = 0.06  # shoulder-pan axis, ahead of the base centre
    shoulder_height: float = 0.215  # shoulder-lift axis above the floor (SO-101: ~0.11 above its plate)
    upper_arm: float = 0.116
    forearm: float = 0.135
    wrist_to_tip: float = 0.10  # wrist-flex axis to the grasp point between the finger pads
    finger_travel: float = 0.045  # per finger: gripper 100 = 2 x 4.5 cm apart
    finger_reach: float = 0.015  # fingertips extend this far beyond the grasp point
    shelf_front: float = 0.35  # world x of the shelf's front edge
    shelf_depth: float = 0.30
    shelf_half_width: float = 0.45
    shelf_height: float = 0.08
    basket_half_inner: float = 0.07
    basket_wall: float = 0.006
    basket_floor: float = 0.004
    basket_height: float = 0.045  # wall height above the basket floor


GEOM = Geometry()


@dataclass(frozen=True)
class ItemSpec:
    height: float  # standing height
    grasp_height: float  # grasp point above the item's bottom
    half_footprint: float  # half the clearance it needs along the shelf (with open fingers around it)
    mass: float


ITEM_SPECS = {
    "salt_bottle": ItemSpec(height=0.11, grasp_height=0.072, half_footprint=0.05, mass=0.12),
    "matcha_tin": ItemSpec(height=0.064, grasp_height=0.04, half_footprint=0.058, mass=0.10),
    "chocolate_bar": ItemSpec(height=0.025, grasp_height=0.019, half_footprint=0.07, mass=0.08),
}

# Contact settings for everything that is grasped or grasps. condim 4 adds torsional friction so a
# pinched cylinder does not spin out; the elliptic cone with impratio (see <option>) stops slow slip.
_ITEM_CONTACT = 'condim="4" friction="1.0 0.02 0.0005" solref="0.004 1" solimp="0.95 0.99 0.001"'
_FINGER_CONTACT = 'condim="4" friction="1.5 0.02 0.0005" solref="0.004 1" solimp="0.95 0.99 0.001"'
_ARM = 'contype="4" conaffinity="1"'
_VISUAL = 'contype="0" conaffinity="0" group="1"'
_ITEM_BITS = 'contype="3" conaffinity="3"'


def _xyaxes_looking(pitch_deg: float) -> str:
    """Camera axes for a camera looking along +x of its body, pitched down by pitch_deg."""
    p = np.radians(pitch_deg)
    return f"0 -1 0 {np.sin(p):.4f} 0 {np.cos(p):.4f}"


def _assets() -> str:
    return """
  <asset>
    <texture name="floor_tex" type="2d" builtin="checker" rgb1=".62 .62 .60" rgb2=".52 .52 .50" width="256" height="256"/>
    <material name="floor" texture="floor_tex" texrepeat="6 6"/>
    <texture name="sky" type="skybox" builtin="gradient" rgb1=".85 .88 .92" rgb2=".55 .6 .66" width="64" height="64"/>
    <material name="wood" rgba=".72 .55 .36 1"/>
    <material name="wall" rgba=".86 .84 .78 1"/>
    <material name="body_white" rgba=".93 .93 .91 1" specular="0.3"/>
    <material name="body_dark" rgba=".16 .16 .18 1"/>
    <material name="servo" rgba=".10 .10 .11 1"/>
    <material name="printed" rgba=".96 .80 .22 1"/>
    <material name="finger" rgba=".25 .26 .28 1"/>
    <material name="basket" rgba=".80 .12 .12 1"/>
    <material name="salt" rgba=".97 .97 .97 1" specular="0.4"/>
    <material name="salt_cap" rgba=".10 .30 .85 1"/>
    <material name="matcha" rgba=".30 .62 .22 1" specular="0.5"/>
    <material name="matcha_lid" rgba=".18 .40 .14 1" specular="0.5"/>
    <material name="chocolate" rgba=".40 .22 .10 1"/>
    <material name="wrapper" rgba=".85 .72 .30 1"/>
  </asset>"""


def _base_and_arm(g: Geometry) -> str:
    lift_z = g.shoulder_height - g.base_top
    wheels = "\n".join(
        f'      <geom type="cylinder" size=".04 .012" pos="{0.09 * np.cos(a):.4f} {0.09 * np.sin(a):.4f} .04" '
        f'euler="0 90 {np.degrees(a):.1f}" material="servo" {_VISUAL}/>'
        for a in np.radians([60.0, 180.0, 300.0])
    )
    pad_x = g.wrist_to_tip + g.finger_reach - 0.0325  # finger box centre along the gripper
    finger = (
        '<geom name="{name}" type="box" size=".0325 .005 .011" pos="{x:.4f} {y} 0" material="finger" '
        f'mass="0.02" {_ARM} {_FINGER_CONTACT}/>'
    )
    return f"""
    <body name="base" pos="0 0 0">
      <joint name="base_x" type="slide" axis="1 0 0" damping="0"/>
      <joint name="base_y" type="slide" axis="0 1 0" damping="0"/>
      <joint name="base_yaw" type="hinge" axis="0 0 1" damping="0"/>
      <geom name="base" type="cylinder" size="{g.base_radius} .045" pos="0 0 .06" material="body_white"
            mass="3" contype="2" conaffinity="2"/>
      <geom type="cylinder" size="{g.base_radius - 0.005} .004" pos="0 0 {g.base_top - 0.002}" material="body_dark" {_VISUAL}/>
{wheels}
      <geom type="capsule" fromto="-.08 .07 .1 -.08 .07 .56" size=".008" material="body_dark" {_VISUAL}/>
      <geom type="box" size=".02 .03 .015" pos="-.075 .07 .575" material="body_dark" {_VISUAL}/>
      <geom type="box" size=".012 .025 .045" pos="{g.base_radius - 0.02} 0 .15" material="body_dark" {_VISUAL}/>
      <camera name="front" pos="{g.base_radius - 0.006} 0 .19" xyaxes="{_xyaxes_looking(30)}" fovy="70"/>
      <!-- The mast stands off to the left so the top camera looks past the arm, not at its back. -->
      <camera name="top" pos="-.06 .07 .58" xyaxes="{_xyaxes_looking(55)}" fovy="78"/>
      <body name="shoulder" pos="{g.arm_mount_x} 0 {g.base_top}" gravcomp="1">
        <joint name="shoulder_pan" type="hinge" axis="0 0 1" range="-110 110" damping="1.5" armature="0.02"/>
        <geom type="box" size=".028 .024 {lift_z / 2 - 0.01}" pos="0 0 {lift_z / 2 - 0.01}" material="servo" mass="0.1" {_VISUAL}/>
        <geom type="cylinder" size=".02 .026" pos="0 0 {lift_z}" euler="90 0 0" material="printed" {_VISUAL}/>
        <body name="upper_arm" pos="0 0 {lift_z}" gravcomp="1">
          <joint name="shoulder_lift" type="hinge" axis="0 1 0" range="-100 100" damping="1.5" armature="0.02"/>
          <geom type="capsule" fromto="0 0 0 0 0 {g.upper_arm}" size=".018" material="printed" mass="0.1" {_ARM}/>
          <body name="forearm" pos="0 0 {g.upper_arm}" gravcomp="1">
            <joint name="elbow_flex" type="hinge" axis="0 1 0" range="-100 100" damping="1.0" armature="0.02"/>
            <geom type="capsule" fromto="0 0 0 {g.forearm} 0 0" size=".016" material="printed" mass="0.08" {_ARM}/>
            <body name="wrist" pos="{g.forearm} 0 0" gravcomp="1">
              <joint name="wrist_flex" type="hinge" axis="0 1 0" range="-100 100" damping="0.5" armature="0.01"/>
              <geom type="box" size=".018 .02 .016" pos=".018 0 0" material="servo" mass="0.05" {_ARM}/>
              <body name="gripper" pos="0 0 0" gravcomp="1">
                <joint name="wrist_roll" type="hinge" axis="1 0 0" range="-160 160" damping="0.3" armature="0.005"/>
                <geom type="box" size=".01 .03 .02" pos=".04 0 0" material="printed" mass="0.05" {_ARM}/>
                <geom type="box" size=".012 .012 .012" pos=".036 0 .028" material="servo" {_VISUAL}/>
                <camera name="wrist" pos=".045 0 .045" xyaxes="{_xyaxes_looking(32)}" fovy="78"/>
                <site name="grasp" pos="{g.wrist_to_tip} 0 0" size=".004" rgba="1 0 0 0" group="3"/>
                <body name="finger_left" pos="0 0 0" gravcomp="1">
                  <joint name="finger_left" type="slide" axis="0 1 0" range="0 {g.finger_travel}" damping="4" armature="0.05"/>
                  {finger.format(name="finger_left", x=pad_x, y=0.005)}
                </body>
                <body name="finger_right" pos="0 0 0" gravcomp="1">
                  <joint name="finger_right" type="slide" axis="0 -1 0" range="0 {g.finger_travel}" damping="4" armature="0.05"/>
                  {finger.format(name="finger_right", x=pad_x, y=-0.005)}
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>"""


def _items() -> str:
    s, m, c = (ITEM_SPECS[k] for k in ("salt_bottle", "matcha_tin", "chocolate_bar"))
    salt_body = s.height - 0.02
    return f"""
    <body name="salt_bottle" pos="0 0 {s.height / 2}">
      <freejoint name="salt_bottle"/>
      <geom name="salt_bottle" type="cylinder" size=".02 {salt_body / 2}" pos="0 0 {-0.01}" material="salt"
            mass="{s.mass * 0.85}" {_ITEM_BITS} {_ITEM_CONTACT}/>
      <geom name="salt_bottle_cap" type="cylinder" size=".021 .01" pos="0 0 {salt_body / 2}" material="salt_cap"
            mass="{s.mass * 0.15}" {_ITEM_BITS} {_ITEM_CONTACT}/>
    </body>
    <body name="matcha_tin" pos="0 0 {m.height / 2}">
      <freejoint name="matcha_tin"/>
      <geom name="matcha_tin" type="cylinder" size=".0275 {m.height / 2}" material="matcha"
            mass="{m.mass}" {_ITEM_BITS} {_ITEM_CONTACT}/>
      <geom type="cylinder" size=".0285 .0085" pos="0 0 {m.height / 2 - 0.0075}" material="matcha_lid" {_VISUAL}/>
    </body>
    <body name="chocolate_bar" pos="0 0 {c.height / 2}">
      <freejoint name="chocolate_bar"/>
      <geom name="chocolate_bar" type="box" size=".05 .022 {c.height / 2}" material="chocolate"
            mass="{c.mass}" {_ITEM_BITS} {_ITEM_CONTACT}/>
      <geom type="box" size=".02 .0225 {c.height / 2 + 0.0005}" pos=".025 0 0" material="wrapper" {_VISUAL}/>
    </body>"""


def _shop(g: Geometry) -> str:
    sx = g.shelf_front + g.shelf_depth / 2
    h = g.basket_half_inner + g.basket_wall / 2
    wall_z = g.basket_floor + g.basket_height / 2
    wall = 'type="box" material="basket" contype="1" conaffinity="1" condim="3" friction="0.8 0.01 0.0005"'
    return f"""
    <geom name="floor" type="plane" size="1.5 1.5 .1" material="floor" contype="1" conaffinity="1"/>
    <geom name="shelf" type="box" size="{g.shelf_depth / 2} {g.shelf_half_width} {g.shelf_height / 2}"
          pos="{sx} 0 {g.shelf_height / 2}" material="wood" contype="1" conaffinity="1" friction="0.9 0.01 0.0005"/>
    <geom type="box" size=".02 1.2 .5" pos="{g.shelf_front + g.shelf_depth + 0.25} 0 .5" material="wall" {_VISUAL}/>
    <body name="basket" mocap="true" pos="{g.shelf_front + 0.09} 0 {g.shelf_height}">
      <geom name="basket_floor" type="box" size="{h + g.basket_wall / 2} {h + g.basket_wall / 2} {g.basket_floor / 2}"
            pos="0 0 {g.basket_floor / 2}" material="basket" contype="1" conaffinity="1"/>
      <geom name="basket_wall_px" {wall} size="{g.basket_wall / 2} {h + g.basket_wall / 2} {g.basket_height / 2}" pos="{h} 0 {wall_z}"/>
      <geom name="basket_wall_nx" {wall} size="{g.basket_wall / 2} {h + g.basket_wall / 2} {g.basket_height / 2}" pos="{-h} 0 {wall_z}"/>
      <geom name="basket_wall_py" {wall} size="{h} {g.basket_wall / 2} {g.basket_height / 2}" pos="0 {h} {wall_z}"/>
      <geom name="basket_wall_ny" {wall} size="{h} {g.basket_wall / 2} {g.basket_height / 2}" pos="0 {-h} {wall_z}"/>
    </body>"""


def _actuators() -> str:
    arm = "\n".join(
        f'    <position name="{j}" joint="{j}" kp="{kp}" kv="0" ctrlrange="{lo} {hi}" forcerange="-{f} {f}"/>'
        for j, kp, lo, hi, f in (
            ("shoulder_pan", 40, -1.92, 1.92, 4),
            ("shoulder_lift", 60, -1.75, 1.75, 6),
            ("elbow_flex", 50, -1.75, 1.75, 5),
            ("wrist_flex", 20, -1.75, 1.75, 3),
            ("wrist_roll", 8, -2.80, 2.80, 2),
        )
    )
    return f"""
  <actuator>
{arm}
    <position name="finger_left" joint="finger_left" kp="600" ctrlrange="0 {GEOM.finger_travel}" forcerange="-15 15"/>
    <position name="finger_right" joint="finger_right" kp="600" ctrlrange="0 {GEOM.finger_travel}" forcerange="-15 15"/>
    <velocity name="base_x" joint="base_x" kv="300" forcerange="-80 80"/>
    <velocity name="base_y" joint="base_y" kv="300" forcerange="-80 80"/>
    <velocity name="base_yaw" joint="base_yaw" kv="20" forcerange="-15 15"/>
  </actuator>"""


def build_mjcf(width: int = 640, height: int = 480, timestep: float = 0.002, geom: Geometry = GEOM) -> str:
    """The whole scene as an MJCF string; `width`/`height` size the offscreen buffer for the cameras."""
    return f"""<mujoco model="lekiwi_shop">
  <compiler angle="degree" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <statistic center=".25 0 .15" extent="1.0"/>
  <visual>
    <global offwidth="{max(width, 64)}" offheight="{max(height, 64)}"/>
    <quality shadowsize="512" offsamples="0"/>
    <headlight ambient=".35 .35 .35" diffuse=".45 .45 .45" specular=".05 .05 .05"/>
    <map znear="0.01"/>
  </visual>
{_assets()}
  <worldbody>
    <light name="sun" directional="true" pos="0 0 3" dir=".3 .2 -1" diffuse=".55 .55 .52" castshadow="false"/>
    <light name="fill" directional="true" pos="0 0 3" dir="-.4 -.3 -1" diffuse=".18 .18 .2" castshadow="false"/>
{_shop(geom)}
{_base_and_arm(geom)}
{_items()}
  </worldbody>
{_actuators()}
</mujoco>
"""
