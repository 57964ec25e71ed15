/**
 * The Device object instance (/3/0) every data-format example of the LwM2M specification describes
 * (1.0 §6.4.3.1 and its copies in later versions), in the value shape of the message contract.
 */
export const DEVICE_EXAMPLE = {
  0: 'Open Mobile Alliance',
  1: 'Lightweight M2M Client',
  2: '345000123',
  3: '1.0',
  6: { 0: 1, 1: 5 },
  7: { 0: 3800, 1: 5000 },
  8: { 0: 125, 1: 900 },
  9: 100,
  10: 15,
  11: { 0: 0 },
  13: 1367491215,
  14: '+02:00',
  16: 'U',
} as const;
