// The boundary and Content-Type the multipart tests write and read bodies with.
export const B = 'gc0p4Jq0M2Yt08jU534c0p';
export const CT = `multipart/mixed; boundary=${B}`;
