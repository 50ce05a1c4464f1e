"""The LeKiwi's 9-D state/action vector, in LeRobot 0.6.1's key names, units and order."""

ARM_KEYS = (
    "arm_shoulder_pan.pos",
    "arm_shoulder_lift.pos",
    "arm_elbow_flex.pos",
    "arm_wrist_flex.pos",
    "arm_wrist_roll.pos",
    "arm_gripper.pos",
)
BASE_KEYS = ("x.vel", "y.vel", "theta.vel")
STATE_KEYS = ARM_KEYS + BASE_KEYS  # observation.state and action share this order

# Arm joints in degrees (gripper 0 = closed .. 100 = open), base in m/s and deg/s.
JOINT_LIMITS_DEG = {
    "arm_shoulder_pan.pos": (-110.0, 110.0),
    "arm_shoulder_lift.pos": (-100.0, 100.0),
    "arm_elbow_flex.pos": (-100.0, 100.0),
    "arm_wrist_flex.pos": (-100.0, 100.0),
    "arm_wrist_roll.pos": (-160.0, 160.0),
    "arm_gripper.pos": (0.0, 100.0),
}
# LeRobot's LeKiwi speed levels top out at 0.3 m/s and 90 deg/s.
MAX_LINEAR_SPEED = 0.3
MAX_ANGULAR_SPEED_DEG = 90.0

STOP_BASE = {"x.vel": 0.0, "y.vel": 0.0, "theta.vel": 0.0}
